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

import csv
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mmfuse.data.errors import DataError

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
        target: the target column name (the task name).
        classes: class names; index ``i`` of the model's output is ``classes[i]``.
    """

    path: Path
    columns: list[str]
    rows: list[Row]
    target: str
    classes: list[str]
    _by_split: dict[str, list[Row]] = field(default_factory=dict, repr=False)

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

    def target_index(self, row: Row) -> int:
        """The class index of a row's target, or -1 when the cell is empty (unlabelled)."""
        value = row.cells.get(self.target, "").strip()
        if value == "":
            return -1
        try:
            return self.classes.index(value)
        except ValueError:
            raise DataError(
                f"target {value!r} is not one of the classes {self.classes}",
                file=str(self.path),
                row=row.row,
                sample_id=row.id,
                column=self.target,
            ) from None


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

    def load(self) -> Manifest:
        """Read and validate the manifest.

        Raises:
            DataError: missing file, unparsable line, no id column, empty or duplicate id,
                unknown split, unknown target column.
        """
        path = Path(self.path)
        if not path.is_file():
            raise DataError("manifest not found", file=str(path))
        columns, records = read_table(path)
        if self.id_column not in columns:
            raise DataError(
                f"no id column {self.id_column!r} (columns: {columns}); set `id_column`",
                file=str(path),
                column=self.id_column,
            )
        has_split = self.split_column in columns
        rows: list[Row] = []
        seen: dict[str, int] = {}
        for number, cells in records:
            sample_id = cells.get(self.id_column, "").strip()
            if sample_id == "":
                raise DataError("empty id", file=str(path), row=number, column=self.id_column)
            if sample_id in seen:
                raise DataError(
                    f"duplicate id (first seen in row {seen[sample_id]})",
                    file=str(path),
                    row=number,
                    sample_id=sample_id,
                    column=self.id_column,
                )
            seen[sample_id] = number
            split = cells.get(self.split_column, "").strip() if has_split else self._hash_split(sample_id)
            if split not in SPLITS:
                raise DataError(
                    f"split {split!r} is not one of {list(SPLITS)}",
                    file=str(path),
                    row=number,
                    sample_id=sample_id,
                    column=self.split_column,
                )
            rows.append(Row(row=number, id=sample_id, split=split, cells=cells))
        classes = self._classes(path, columns, rows)
        return Manifest(path=path, columns=columns, rows=rows, target=self.target, classes=classes)

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
        values = {r.cells.get(self.target, "").strip() for r in rows} - {""}
        if not values:
            raise DataError("the target column is empty in every row", file=str(path), column=self.target)
        if all(_is_int(v) for v in values):
            # integer labels are class ids: the classes are 0..max, by number
            ids = sorted({int(v) for v in values})
            if ids[0] < 0:
                raise DataError(f"negative class id {ids[0]}", file=str(path), column=self.target)
            return [str(i) for i in range(ids[-1] + 1)]
        return sorted(values)


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def read_table(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Read a CSV or JSONL manifest into ``(columns, [(row_number, cells), ...])``, cells as text.

    Raises:
        DataError: an unknown suffix, or a line that does not parse (with its line number).
    """
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path)
    if suffix in (".jsonl", ".ndjson"):
        return _read_jsonl(path)
    raise DataError(f"unknown manifest format {suffix!r}: use .csv or .jsonl", file=str(path))


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError("empty manifest", file=str(path)) from None
        except csv.Error as e:
            raise DataError(f"line {reader.line_num}: not valid CSV ({e})", file=str(path), row=0) from None
        header = [h.strip() for h in header]
        records = []
        number = 0
        while True:
            try:
                values = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                raise DataError(
                    f"line {reader.line_num}: not valid CSV ({e})", file=str(path), row=number + 1
                ) from None
            if not values:
                continue  # blank line
            number += 1
            if len(values) != len(header):
                raise DataError(
                    f"line {reader.line_num}: {len(values)} fields where the header has {len(header)}",
                    file=str(path),
                    row=number,
                )
            records.append((number, dict(zip(header, values, strict=True))))
    return header, records


def _read_jsonl(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    columns: dict[str, None] = {}
    records = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(
                    f"line {number}: not valid JSON ({e.msg})", file=str(path), row=number
                ) from None
            if not isinstance(obj, dict):
                raise DataError(f"line {number}: expected a JSON object", file=str(path), row=number)
            cells = {k: "" if v is None else str(v) for k, v in obj.items()}
            columns.update(dict.fromkeys(cells))
            records.append((number, cells))
    return list(columns), records
