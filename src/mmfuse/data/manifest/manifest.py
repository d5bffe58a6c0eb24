"""The parsed manifest: its rows (:class:`Row`) and targets (:class:`Manifest`), read by
:class:`~mmfuse.data.manifest.source.ManifestSource`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from mmfuse.data.manifest.errors import DataError
from mmfuse.data.manifest.tasks import (
    TargetError,
    TargetValue,
    Task,
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
