"""The manifest: one CSV or JSONL table that says, per sample, its id, split, modality cells and target.

Format (see README "Train on your own data"):

- ``id``: unique string per sample (column name configurable).
- ``split``: ``train`` / ``val`` / ``test``; optional. Without it every sample is assigned a split
  by a hash of its id, so the assignment never changes when rows are added or reordered.
- one column per modality: image/audio cells hold a path relative to the manifest's folder, text
  cells hold the text. An empty cell means the modality is missing for that sample.
- the target column: integer class ids, or class names (mapped to indices in natural order,
  ``class2`` before ``class10``, unless ``classes`` gives the order); or
  several target columns, one or more per task (see :mod:`mmfuse.data.manifest.tasks`).
- extra columns are ignored.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from mmfuse.data.manifest.errors import DataError
from mmfuse.data.manifest.reader import read_table
from mmfuse.data.manifest.tasks import (
    TargetError,
    TargetValue,
    Task,
    TaskSpec,
    first_multiclass,
    missing_value,
    read_target,
)

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Row:
    """One manifest row.

    Attributes:
        row: 1-based data row number (CSV: the header is row 0; JSONL: the line number).
        id: the sample id.
        split: ``train``, ``val`` or ``test``.
        cells: every column of the row as text (empty string where the cell is empty).
    """

    row: int
    id: str
    split: str
    cells: dict[str, str]


@dataclass
class Manifest:
    """A parsed, validated manifest.

    Attributes:
        path: the manifest file.
        columns: column names, in file order.
        rows: every row, in file order.
        tasks: the targets, with their class and label names resolved; empty for an unlabelled manifest.
        labelled_splits: the splits with a target in at least one row; in these a row whose every
            target is empty is a problem (see :meth:`target_problems`).
        allow_outside_root: media paths may lead outside the manifest's folder (see
            :meth:`outside_root`).
        inferred_classes: the tasks whose class names were learnt from the data (no ``classes``
            in the config).
    """

    path: Path
    columns: list[str]
    rows: list[Row]
    tasks: list[Task] = field(default_factory=list)
    labelled_splits: set[str] = field(default_factory=set)
    allow_outside_root: bool = False
    inferred_classes: set[str] = field(default_factory=set)
    _by_split: dict[str, list[Row]] = field(default_factory=dict, repr=False)
    _index: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)

    @property
    def root(self) -> Path:
        """The folder that relative media paths are resolved against."""
        return self.path.parent

    @property
    def target(self) -> str | None:
        """The column of the first multiclass task (what reports count classes of), or None."""
        task = self._first_multiclass()
        return task.target_columns[0] if task else None

    @property
    def classes(self) -> list[str]:
        """The class names of the first multiclass task (``[]`` without one)."""
        task = self._first_multiclass()
        return list(task.names) if task else []

    @property
    def target_columns(self) -> list[str]:
        """Every column a task reads."""
        return [c for t in self.tasks for c in t.target_columns]

    def _first_multiclass(self) -> Task | None:
        first = first_multiclass(t.spec() for t in self.tasks)
        return next(t for t in self.tasks if t.name == first["name"]) if first else None

    def outside_root(self, cell: str) -> str | None:
        """Why a media path leads outside the manifest's folder (``..`` or absolute), or None when it
        stays inside or ``allow_outside_root`` is set.

        The check is on the path as written, normalised without touching the disk: a symbolic link
        inside the folder is followed wherever it points (placing it there is the explicit act).
        """
        if self.allow_outside_root:
            return None
        root = os.path.abspath(self.root)
        target = os.path.normpath(os.path.join(root, cell))
        if os.path.commonpath([root, target]) == root:
            return None
        kind = "an absolute path" if os.path.isabs(cell) else "a path"
        return (
            f"{kind} outside the manifest's folder {root} ({cell!r}): set allow_outside_root: true "
            "on the source to read media from elsewhere (e.g. a shared dataset folder)"
        )

    def split(self, name: str) -> list[Row]:
        """Rows of one split, in file order."""
        if not self._by_split:
            for split in SPLITS:
                self._by_split[split] = [r for r in self.rows if r.split == split]
        return self._by_split[name]

    def _names_index(self, task: Task) -> dict[str, int]:
        index = self._index.get(task.name)
        if index is None:
            index = self._index[task.name] = {c: i for i, c in enumerate(task.names)}
        return index

    def set_classes(self, task: str, classes: list[str]) -> None:
        """Replace a task's class (or delimited label) names, e.g. with the order a checkpoint was
        trained in; a task this manifest does not have, or one named by its columns, is left alone."""
        for i, t in enumerate(self.tasks):
            if t.name == task and (t.kind == "multiclass" or t.delimited):
                self.tasks[i] = replace(t, classes=list(classes))
                self._index.pop(task, None)
                self.inferred_classes.discard(task)  # given, not learnt from this data

    def target_problems(self, row: Row) -> list[tuple[str, str]]:
        """What is wrong with a row's targets for training or evaluation: ``(column, reason)`` pairs.

        A cell that is present but invalid is a problem. An empty cell is a missing value (masked
        out of its task's loss and metrics), except that a row of a labelled split (see
        ``labelled_splits``) needs at least one target; in an unlabelled split, or in a manifest
        without target columns, empty targets are what ``predict`` expects.
        """
        problems = []
        observed = False
        for task in self.tasks:
            if not any(c in self.columns for c in task.target_columns):
                continue
            try:
                read_target(task, row.cells, self._names_index(task))
            except TargetError as e:
                problems.append((e.column, e.reason))
                observed = True
                continue
            observed = observed or any(row.cells.get(c, "").strip() for c in task.target_columns)
        if not observed and row.split in self.labelled_splits:
            columns = [c for c in self.target_columns if c in self.columns]
            if len(columns) == 1:
                problems.append((columns[0], "target is empty"))
            else:
                problems.append((columns[0], f"every target is empty (columns {columns})"))
        return problems

    def targets(self, row: Row, strict: bool = True) -> dict[str, TargetValue]:
        """Every task's target value for a row: class index ``-1`` / NaN where it is missing.

        Args:
            row: the row.
            strict: raise on an invalid cell; False (``predict``) reads it as missing instead.

        Raises:
            DataError: an invalid target cell, naming file, row, id and column (only when ``strict``).
        """
        out: dict[str, TargetValue] = {}
        for task in self.tasks:
            try:
                out[task.name] = read_target(task, row.cells, self._names_index(task))
            except TargetError as e:
                if not strict:
                    out[task.name] = missing_value(task)
                    continue
                raise self._target_error(row, e) from None
        return out

    def target_index(self, row: Row) -> int:
        """The class index of a row's first multiclass target, or -1 when its cell is empty.

        Raises:
            DataError: the target is not one of the classes.
        """
        task = self._first_multiclass()
        if task is None:
            return -1
        try:
            value = read_target(task, row.cells, self._names_index(task))
        except TargetError as e:
            raise self._target_error(row, e) from None
        return value if isinstance(value, int) else -1

    def _target_error(self, row: Row, error: TargetError) -> DataError:
        return DataError.in_row(error.reason, row, str(self.path), error.column)


class ManifestSource:
    """Where the samples come from: a manifest file in CSV or JSONL.

    Args:
        path: the manifest (``.csv`` or ``.jsonl``); media paths inside it are relative to its folder.
        id_column: column holding the unique sample id.
        split_column: column holding ``train``/``val``/``test``. If the manifest has no such column,
            splits are assigned by a hash of the id with ``val_fraction`` and ``test_fraction``.
        target: column holding the class (integer id or name): the shorthand for one multiclass
            task of that name. None (and no ``tasks``): an unlabelled manifest, every row is used and
            batches have no targets (e.g. for contrastive pre-training).
        classes: the class names of ``target`` in index order. Default: the distinct target values
            in natural order (numbers inside names compare as numbers: ``class2`` before
            ``class10``); integer values are class ids and must be ``0..K-1``.
        tasks: several targets, each a :class:`~mmfuse.data.manifest.tasks.Task` (multiclass, multilabel or
            regression, with its columns); replaces ``target`` and ``classes`` when given.
        val_fraction: share of samples hashed into ``val`` when there is no split column.
        test_fraction: share of samples hashed into ``test`` when there is no split column.
        split_seed: salt of the split hash; change it to draw a different split.
        allow_outside_root: media paths (image, audio, graph cells) may lead outside the manifest's
            folder (``../shared/x.png``, ``/data/x.png``). Off: such a path is a problem of its row,
            so that a manifest cannot read files it was not given.
    """

    def __init__(
        self,
        path: str,
        id_column: str = "id",
        split_column: str = "split",
        target: str | None = "label",
        classes: list[str] | None = None,
        tasks: list[Task] | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        allow_outside_root: bool = False,
    ) -> None:
        if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
            raise ValueError(
                f"val_fraction={val_fraction} and test_fraction={test_fraction} must be >= 0 and sum to < 1"
            )
        self.path = path
        self.id_column = id_column
        self.split_column = split_column
        if tasks is not None and classes is not None:
            raise ValueError("`classes` belongs to `target`; with `tasks`, set `classes` on each task")
        if tasks is not None:
            names = [t.name for t in tasks]
            if len(set(names)) != len(names):
                raise ValueError(f"task names must be distinct, got {names}")
        self.target = target
        self.classes = classes
        self.tasks = tasks
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self.allow_outside_root = allow_outside_root

    def prepare(self) -> None:
        """Make the manifest exist (download, generate, ...). A plain manifest file needs nothing."""

    def load(self, problems: list[DataError] | None = None) -> Manifest:
        """Read and validate the manifest.

        Args:
            problems: None: the first bad row raises. A list: every bad row is appended to it (as a
                :class:`DataError` naming file, row, id and column) and left out of the manifest, so
                that a checker can report them all. Problems with the file as a whole still raise.

        Raises:
            DataError: missing file, no id column (always); an unparsable line, an empty or
                duplicate id, the same id in two splits, an unknown split, no usable target column
                (only when ``problems`` is None).
        """
        path = Path(self.path)
        if not path.is_file():
            raise DataError("manifest not found", file=str(path))
        columns, records = read_table(path, problems)
        if self.id_column not in columns:
            raise DataError(
                f"no id column {self.id_column!r} (columns: {columns}); set `id_column`",
                file=str(path),
                column=self.id_column,
            )
        has_split = self.split_column in columns
        rows: list[Row] = []
        seen: dict[str, Row] = {}

        def report(reason: str, number: int, split: str | None, column: str, sample_id: str | None) -> None:
            error = DataError(
                reason, file=str(path), row=number, sample_id=sample_id, column=column, split=split
            )
            if problems is None:
                raise error
            problems.append(error)

        for number, cells in records:
            sample_id = cells.get(self.id_column, "").strip()
            if has_split:
                split = cells.get(self.split_column, "").strip()
            else:
                split = self._hash_split(sample_id) if sample_id else ""
            known = split if split in SPLITS else None
            if sample_id == "":
                report("empty id", number, known, self.id_column, None)
                continue
            if known is None:
                reason = f"split {split!r} is not one of {list(SPLITS)}"
                report(reason, number, None, self.split_column, sample_id)
                continue
            first = seen.get(sample_id)
            if first is not None:
                if first.split == split:
                    reason = f"duplicate id (first seen in row {first.row})"
                else:
                    reason = f"the same id is in two splits: {first.split!r} (row {first.row}) and {split!r}"
                report(reason, number, split, self.id_column, sample_id)
                continue
            row = Row(row=number, id=sample_id, split=split, cells=cells)
            seen[sample_id] = row
            rows.append(row)
        tasks: list[Task] = []
        for task in self.declared_tasks():
            try:
                tasks.append(task.resolve(path, columns, [r.cells for r in rows]))
            except DataError as e:
                if problems is None:
                    raise
                problems.append(e)  # no usable target column: the rest can still be checked
        targets = [c for t in tasks for c in t.target_columns]
        labelled = {r.split for r in rows if any(r.cells.get(c, "").strip() for c in targets)}
        inferred = {t.name for t in self.declared_tasks() if t.needs_data()}
        return Manifest(
            path=path,
            columns=columns,
            rows=rows,
            tasks=tasks,
            labelled_splits=labelled,
            allow_outside_root=self.allow_outside_root,
            inferred_classes=inferred,
        )

    def declared_tasks(self) -> list[Task]:
        """The tasks as configured: ``tasks``, else one multiclass task for ``target``, else none."""
        if self.tasks is not None:
            return list(self.tasks)
        if self.target is None:
            return []
        return [Task(name=self.target, classes=None if self.classes is None else list(self.classes))]

    def use_tasks(self, specs: Sequence[TaskSpec]) -> None:
        """Read exactly these tasks, with these class names: a checkpoint's, for evaluating it.

        Each task keeps the columns (and delimiter) declared here under its name; a task not declared
        here reads the column of its name. Nothing is inferred from the manifest any more: a target
        outside the classes is a problem of its row, and an unlabelled manifest can be predicted.

        Raises:
            ValueError: a task declared here is not among ``specs``, or has another kind.
        """
        declared = {t.name: t for t in self.declared_tasks()}
        wanted = [s["name"] for s in specs]
        extra = [name for name in declared if name not in wanted]
        if extra:
            raise ValueError(
                f"the data declares the task(s) {extra}, which the model was not trained on "
                f"(its tasks: {wanted})"
            )
        tasks = []
        for spec in specs:
            task = declared.get(spec["name"]) or Task(name=spec["name"], kind=spec["kind"])
            if task.kind != spec["kind"]:
                raise ValueError(
                    f"task {task.name!r} is {task.kind} in the data but {spec['kind']} in the model"
                )
            if task.kind == "multiclass" or task.delimited:
                task = replace(task, classes=list(spec["names"]))
            tasks.append(task)
        self.tasks, self.classes = tasks, None

    def _hash_split(self, sample_id: str) -> str:
        digest = hashlib.sha256(f"{self.split_seed}:{sample_id}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1), stable across runs and machines
        if u < self.test_fraction:
            return "test"
        if u < self.test_fraction + self.val_fraction:
            return "val"
        return "train"
