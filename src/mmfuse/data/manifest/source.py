"""ManifestSource: reads the manifest, one CSV or JSONL table that says, per sample, its id, split,
modality cells and target.

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
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from mmfuse.data.manifest.errors import DataError
from mmfuse.data.manifest.manifest import SPLITS, Manifest, Row
from mmfuse.data.manifest.reader import read_table
from mmfuse.data.manifest.tasks import Task, TaskSpec


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
