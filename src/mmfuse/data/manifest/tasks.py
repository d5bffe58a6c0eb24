"""Tasks: what a manifest's target columns mean, and how one row's target cells are read.

A task is declared in YAML under the source's ``tasks`` (``ManifestSource(tasks=[...])``)::

    tasks:
      - {name: label}                                    # multiclass, column "label"
      - {name: cues, kind: multilabel, columns: [cue_image, cue_text, cue_audio]}   # 0/1 columns
      - {name: tags, kind: multilabel, delimiter: "|"}   # one cell "a|b", labels from the data
      - {name: tone_khz, kind: regression}               # a float

Missing values (an empty cell) are masked out of the task's loss and metrics, never dropped from the
batch: multiclass ``-1``, multilabel and regression ``NaN``. A cell that is present but cannot be read
(``"abc"`` for a regression target, an unknown class) is a problem of its row, like a broken image.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, TypedDict

from torch import nn

from mmfuse.data.manifest.class_names import infer_classes
from mmfuse.data.manifest.errors import DataError

TaskKind = Literal["multiclass", "multilabel", "regression"]
KINDS: tuple[TaskKind, ...] = ("multiclass", "multilabel", "regression")
_SHOWN_CLASSES = 12  # classes named in a "not one of the classes" message
_TRUE = {"1", "1.0", "true"}
_FALSE = {"0", "0.0", "false"}

#: one target value as the dataset returns it: a class index, a float, or one float per label
TargetValue = int | float | list[float]


class TaskSpec(TypedDict):
    """A task as the model sees it: plain values, so that it travels in a checkpoint's hyper-parameters.

    Attributes:
        name: key in ``Batch.targets`` and ``ModelOutput.logits``; metric prefix ``val/<name>/``.
        kind: ``multiclass``, ``multilabel`` or ``regression``.
        names: multiclass: the class names in index order; multilabel: the label names in output
            order; regression: ``[]``.
    """

    name: str
    kind: TaskKind
    names: list[str]


def first_multiclass(tasks: Iterable[TaskSpec]) -> TaskSpec | None:
    """The first multiclass task, or None: the one whose classes reports count, and that the presence
    breakdown, W&B media and ablations show."""
    return next((t for t in tasks if t["kind"] == "multiclass"), None)


def output_width(spec: TaskSpec) -> int:
    """Width of the task head's output: ``K`` classes or labels, 1 for regression."""
    return 1 if spec["kind"] == "regression" else len(spec["names"])


def check_task_name(name: str) -> None:
    """A task name keys an ``nn.ModuleDict`` of heads and a metric prefix: no ``.``, no ``/``, not a
    ``ModuleDict`` attribute (``type``, ``train``, ...).

    Raises:
        ValueError: the name cannot be used; the message says how to keep the column anyway.
    """
    if not name or "." in name or "/" in name or hasattr(nn.ModuleDict(), name):
        raise ValueError(
            f"task name {name!r} cannot be used (empty, contains '.' or '/', or is an nn.ModuleDict "
            f"attribute): name the task differently and keep the column with `columns: [{name}]`"
        )


@dataclass
class Task:
    """One target of the manifest, declared in YAML under the source's ``tasks``.

    Args:
        name: the task's name: key in ``Batch.targets``, prefix of its metrics (``val/<name>/acc``).
        kind: ``multiclass`` (one class per sample), ``multilabel`` (any subset of labels) or
            ``regression`` (a float).
        columns: the manifest column(s) holding the target (default: ``[name]``). Multilabel: several
            0/1 columns (one per label, named by its column), or one column whose cell holds the
            labels joined by ``delimiter``.
        classes: multiclass: the class names in index order (default: the distinct values in
            natural order, numbers inside names compared as numbers: ``class2`` before ``class10``;
            integer values are class ids ``0..K-1``). Multilabel with one delimited column: the
            label names (default: the distinct labels in natural order). Not used otherwise.
        delimiter: separates the labels in a delimited multilabel cell.
        no_labels: a delimited multilabel cell holding exactly this means "no label applies" (an
            empty cell means the target is missing).
    """

    name: str
    kind: TaskKind = "multiclass"
    columns: list[str] | None = None
    classes: list[str] | None = None
    delimiter: str = "|"
    no_labels: str = "none"

    def __post_init__(self) -> None:
        check_task_name(self.name)
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name!r}: kind {self.kind!r} is not one of {list(KINDS)}")
        columns = self.target_columns
        if not columns or len(set(columns)) != len(columns) or not all(columns):
            raise ValueError(f"task {self.name!r}: columns={self.columns} must be distinct, non-empty names")
        if self.kind != "multilabel" and len(columns) != 1:
            raise ValueError(f"task {self.name!r}: a {self.kind} task reads one column, got {columns}")
        if self.kind == "regression" and self.classes is not None:
            raise ValueError(f"task {self.name!r}: a regression task has no classes")
        if self.kind == "multilabel" and len(columns) > 1 and self.classes is not None:
            raise ValueError(
                f"task {self.name!r}: a multilabel task over several 0/1 columns is named by its columns; "
                "leave `classes` unset"
            )
        if self.kind == "multilabel" and not self.delimiter:
            raise ValueError(f"task {self.name!r}: `delimiter` must not be empty")

    @property
    def target_columns(self) -> list[str]:
        """The manifest columns this task reads."""
        return list(self.columns) if self.columns else [self.name]

    @property
    def delimited(self) -> bool:
        """True for a multilabel task whose labels are joined in one cell."""
        return self.kind == "multilabel" and len(self.target_columns) == 1

    @property
    def names(self) -> list[str]:
        """Class or label names in output order (multilabel over 0/1 columns: the columns)."""
        if self.kind == "regression":
            return []
        if self.kind == "multilabel" and not self.delimited:
            return self.target_columns
        return list(self.classes or [])

    def spec(self) -> TaskSpec:
        """The plain description the model is built from (after :meth:`resolve`)."""
        return TaskSpec(name=self.name, kind=self.kind, names=self.names)

    def needs_data(self) -> bool:
        """True when the names must be learnt from the manifest (no ``classes`` given)."""
        if self.classes is not None:
            return False
        return self.kind == "multiclass" or self.delimited

    def resolve(self, path: Path, columns: Sequence[str], cells: Sequence[Mapping[str, str]]) -> Task:
        """This task with its class or label names filled in from the rows' cells where not given.

        Args:
            path: the manifest (for error messages).
            columns: the manifest's columns.
            cells: every row's cells.

        Raises:
            DataError: a target column is missing while the names must come from it, or it is empty
                in every row, or integer class ids are negative.
        """
        missing = [c for c in self.target_columns if c not in columns]
        if missing and self.needs_data():
            raise DataError(
                f"no target column {missing[0]!r} (columns: {list(columns)}) for task {self.name!r}; "
                "set `target` (or the task's `columns`), or `classes` to predict on unlabelled data",
                file=str(path),
                column=missing[0],
            )
        if missing or not self.needs_data():
            return replace(self)
        column = self.target_columns[0]
        values = [v for c in cells if (v := c.get(column, "").strip())]
        if self.delimited:
            values = [p for v in values if v != self.no_labels for p in _split(v, self.delimiter)]
        counts = Counter(values)
        if not counts:
            raise DataError("the target column is empty in every row", file=str(path), column=column)
        return replace(self, classes=infer_classes(counts, path, column, ints=not self.delimited))


def read_target(task: Task, cells: Mapping[str, str], index: Mapping[str, int]) -> TargetValue:
    """One row's target for ``task``; the missing value (``-1`` / NaN) where its cell is empty.

    Args:
        task: a resolved task.
        cells: the row's cells.
        index: class or label name -> output index (the task's ``names``).

    Raises:
        TargetError: a cell that is present but not a valid target.
    """
    columns = task.target_columns
    if task.kind == "multiclass":
        value = cells.get(columns[0], "").strip()
        if value == "":
            return -1
        if value not in index:
            raise TargetError(columns[0], f"target {value!r} is not one of the classes {_shown(task.names)}")
        return index[value]
    if task.kind == "regression":
        value = cells.get(columns[0], "").strip()
        if value == "":
            return math.nan
        try:
            number = float(value)
        except ValueError:
            raise TargetError(columns[0], f"regression target {value!r} is not a number") from None
        if not math.isfinite(number):
            raise TargetError(columns[0], f"regression target {value!r} is not a finite number")
        return number
    if not task.delimited:  # multilabel, one 0/1 column per label; each may be missing on its own
        out = []
        for column in columns:
            value = cells.get(column, "").strip()
            if value == "":
                out.append(math.nan)
            elif value.lower() in _TRUE | _FALSE:
                out.append(1.0 if value.lower() in _TRUE else 0.0)
            else:
                raise TargetError(column, f"multilabel cell {value!r} is not 0 or 1")
        return out
    value = cells.get(columns[0], "").strip()
    if value == "":
        return [math.nan] * len(index)
    out = [0.0] * len(index)
    if value == task.no_labels:
        return out
    for label in _split(value, task.delimiter):
        if label not in index:
            raise TargetError(columns[0], f"label {label!r} is not one of the labels {_shown(task.names)}")
        out[index[label]] = 1.0
    return out


def missing_value(task: Task) -> TargetValue:
    """The value of a task whose target is unknown: ``-1``, NaN, or NaN per label."""
    if task.kind == "multiclass":
        return -1
    if task.kind == "regression":
        return math.nan
    return [math.nan] * len(task.names)


class TargetError(Exception):
    """A target cell that is present but invalid; the caller adds file, row and id.

    Args:
        column: the manifest column of the cell.
        reason: what is wrong with it.
    """

    def __init__(self, column: str, reason: str) -> None:
        self.column = column
        self.reason = reason
        super().__init__(f"column {column!r}: {reason}")


def _split(value: str, delimiter: str) -> list[str]:
    return [p for part in value.split(delimiter) if (p := part.strip())]


def _shown(names: Sequence[str]) -> str:
    shown = list(names[:_SHOWN_CLASSES])
    more = f" and {len(names) - len(shown)} more" if len(names) > len(shown) else ""
    return f"{shown}{more}"
