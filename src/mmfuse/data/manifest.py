"""The manifest: one CSV or JSONL table that says, per sample, its id, split, modality cells and target.

Format (see README "Train on your own data"):

- ``id``: unique string per sample (column name configurable).
- ``split``: ``train`` / ``val`` / ``test``; optional. Without it every sample is assigned a split
  by a hash of its id, so the assignment never changes when rows are added or reordered.
- one column per modality: image/audio cells hold a path relative to the manifest's folder, text
  cells hold the text. An empty cell means the modality is missing for that sample.
- the target column: integer class ids, or class names (mapped to indices in sorted order).
- extra columns are ignored.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mmfuse.data.errors import DataError
from mmfuse.data.table import read_table

SPLITS = ("train", "val", "test")
_TYPICAL_CLASS_ROWS = 10  # see _outliers
_SHOWN_CLASSES = 12  # classes named in a "not one of the classes" message


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
        target: the target column name (the task name).
        classes: class names; index ``i`` of the model's output is ``classes[i]``.
        labelled_splits: the splits with a target in at least one row; in these an empty target
            is a problem (see :meth:`target_problem`).
    """

    path: Path
    columns: list[str]
    rows: list[Row]
    target: str
    classes: list[str]
    labelled_splits: set[str] = field(default_factory=set)
    _by_split: dict[str, list[Row]] = field(default_factory=dict, repr=False)
    _index: dict[str, int] = field(default_factory=dict, repr=False)
    _index_of: list[str] | None = field(default=None, repr=False)

    @property
    def root(self) -> Path:
        """The folder that relative media paths are resolved against."""
        return self.path.parent

    def split(self, name: str) -> list[Row]:
        """Rows of one split, in file order."""
        if not self._by_split:
            for split in SPLITS:
                self._by_split[split] = [r for r in self.rows if r.split == split]
        return self._by_split[name]

    def _class_index(self) -> dict[str, int]:
        if self._index_of is not self.classes:  # `classes` is replaced when a checkpoint is restored
            self._index = {c: i for i, c in enumerate(self.classes)}
            self._index_of = self.classes
        return self._index

    def target_problem(self, row: Row) -> str | None:
        """What is wrong with a row's target for training or evaluation, or None.

        An empty target is a problem in a labelled split (see ``labelled_splits``); in an unlabelled
        split, or in a manifest without a target column, it is what ``predict`` expects.
        """
        if self.target not in self.columns:
            return None
        value = row.cells.get(self.target, "").strip()
        if value == "":
            return "target is empty" if row.split in self.labelled_splits else None
        if value not in self._class_index():
            shown = self.classes[:_SHOWN_CLASSES]
            more = f" and {len(self.classes) - len(shown)} more" if len(self.classes) > len(shown) else ""
            return f"target {value!r} is not one of the classes {shown}{more}"
        return None

    def target_index(self, row: Row) -> int:
        """The class index of a row's target, or -1 when the cell is empty (unlabelled).

        Raises:
            DataError: the target is not one of ``classes``.
        """
        value = row.cells.get(self.target, "").strip()
        if value == "":
            return -1
        index = self._class_index().get(value)
        if index is None:
            raise DataError(
                self.target_problem(row) or f"target {value!r} is not a class",
                file=str(self.path),
                row=row.row,
                sample_id=row.id,
                column=self.target,
                split=row.split,
            )
        return index


class ManifestSource:
    """Where the samples come from: a manifest file in CSV or JSONL.

    Args:
        path: the manifest (``.csv`` or ``.jsonl``); media paths inside it are relative to its folder.
        id_column: column holding the unique sample id.
        split_column: column holding ``train``/``val``/``test``. If the manifest has no such column,
            splits are assigned by a hash of the id with ``val_fraction`` and ``test_fraction``.
        target: column holding the class (integer id or name).
        classes: the class names in index order. Default: the sorted distinct target values
            (integers sort numerically and must be ``0..K-1``).
        val_fraction: share of samples hashed into ``val`` when there is no split column.
        test_fraction: share of samples hashed into ``test`` when there is no split column.
        split_seed: salt of the split hash; change it to draw a different split.
    """

    def __init__(
        self,
        path: str,
        id_column: str = "id",
        split_column: str = "split",
        target: str = "label",
        classes: list[str] | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
    ) -> None:
        if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
            raise ValueError(
                f"val_fraction={val_fraction} and test_fraction={test_fraction} must be >= 0 and sum to < 1"
            )
        self.path = path
        self.id_column = id_column
        self.split_column = split_column
        self.target = target
        self.classes = classes
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = split_seed

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
        try:
            classes = self._classes(path, columns, rows)
        except DataError as e:
            if problems is None:
                raise
            problems.append(e)  # no usable target column: the rest can still be checked
            classes = []
        labelled = {r.split for r in rows if r.cells.get(self.target, "").strip()}
        return Manifest(
            path=path,
            columns=columns,
            rows=rows,
            target=self.target,
            classes=classes,
            labelled_splits=labelled,
        )

    def _hash_split(self, sample_id: str) -> str:
        digest = hashlib.sha256(f"{self.split_seed}:{sample_id}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1), stable across runs and machines
        if u < self.test_fraction:
            return "test"
        if u < self.test_fraction + self.val_fraction:
            return "val"
        return "train"

    def _classes(self, path: Path, columns: Sequence[str], rows: Sequence[Row]) -> list[str]:
        if self.target not in columns:
            if self.classes is not None:
                return list(self.classes)  # unlabelled data for predict, classes from config
            raise DataError(
                f"no target column {self.target!r} (columns: {list(columns)}); set `target`",
                file=str(path),
                column=self.target,
            )
        if self.classes is not None:
            return list(self.classes)
        counts = Counter(v for r in rows if (v := r.cells.get(self.target, "").strip()))
        if not counts:
            raise DataError("the target column is empty in every row", file=str(path), column=self.target)
        values = set(counts) - _outliers(counts)
        ints = {int(v) for v in values if _is_int(v)}
        int_rows = sum(c for v, c in counts.items() if v in values and _is_int(v))
        if ints and int_rows >= 0.9 * sum(counts[v] for v in values):
            # integer labels are class ids: the classes are 0..max, by number. Rows whose target is
            # not such an id (a stray name, a negative number) fail the class check, row by row.
            top = max(ints)
            if top < 0:
                raise DataError(f"negative class id {top}", file=str(path), column=self.target)
            return [str(i) for i in range(top + 1)]
        return sorted(values)


def _outliers(counts: Counter[str]) -> set[str]:
    """Target values that are almost surely not classes: seen once where a typical class has >= 10 rows.

    Inferred classes would otherwise turn a typo or a stray value into a class of its own. With
    ``classes`` given in the config nothing is guessed: every value outside it is reported.
    """
    if len(counts) < 2:
        return set()
    sizes = sorted(counts.values())
    if sizes[len(sizes) // 2] < _TYPICAL_CLASS_ROWS:
        return set()
    return {v for v, c in counts.items() if c == 1}


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
