"""Reading a manifest file (CSV or JSONL) into text cells, reporting every line that does not parse.

Lines are decoded one by one, so a line that is not UTF-8 or not valid CSV/JSON costs that line only:
with a ``problems`` list the reader records it (naming the line) and goes on with the next line.
A CSV record that does not parse, or has the wrong number of fields, is dropped and reading resumes
on the line after the one it started on, so an unterminated quote loses one row, not the rest of the
file.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from mmfuse.data.manifest.errors import DataError

Record = tuple[int, dict[str, str]]  # (1-based data row number, column -> cell text)


def _lift_field_limit() -> None:
    """Let ``csv`` read a cell of any size: its default limit (131,072 characters) rejects valid CSV
    with long texts. ``sys.maxsize`` overflows the C long on some platforms (Windows): step down."""
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:
            limit //= 2


def read_table(path: Path, problems: list[DataError] | None = None) -> tuple[list[str], list[Record]]:
    """Read a CSV or JSONL manifest into ``(columns, [(row_number, cells), ...])``, cells as text.

    Args:
        path: the manifest; ``.csv``, or ``.jsonl`` / ``.ndjson``.
        problems: None: the first bad line raises. A list: each bad line is appended as a
            :class:`DataError` (``row`` = its data row, the reason starts with ``line N:``) and skipped.

    Raises:
        DataError: an unknown suffix, an empty file or a bad CSV header (always); a bad line
            (only when ``problems`` is None).
    """
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise DataError(f"unknown manifest format {suffix!r}: use .csv or .jsonl", file=str(path))
    lines = _decode_lines(path)
    if suffix == ".csv":
        return _read_csv(path, lines, problems)
    return _read_jsonl(path, lines, problems)


def _decode_lines(path: Path) -> list[str | None]:
    """The file's lines with their line endings; None for a line that is not valid UTF-8."""
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # a UTF-8 byte-order mark (spreadsheet exports) is not part of the first column's name
    out: list[str | None] = []
    for line in raw.splitlines(keepends=True):
        try:
            out.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            out.append(None)
    return out


def _report(problems: list[DataError] | None, error: DataError) -> None:
    if problems is None:
        raise error
    problems.append(error)


class _Lines(Iterator[str]):
    """Feeds lines to ``csv.reader`` one at a time; ``pos`` (lines handed out) can be moved back."""

    def __init__(self, lines: list[str | None]) -> None:
        self.lines = lines
        self.pos = 0

    def __next__(self) -> str:
        if self.pos >= len(self.lines):
            raise StopIteration
        self.pos += 1
        return self.lines[self.pos - 1] or "\n"  # an undecodable line inside a quoted field: blank


def _read_csv(
    path: Path, lines: list[str | None], problems: list[DataError] | None
) -> tuple[list[str], list[Record]]:
    _lift_field_limit()
    src = _Lines(lines)
    reader = csv.reader(src)
    if lines and lines[0] is None:
        raise DataError("line 1: the header is not valid UTF-8", file=str(path), row=0)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataError("empty manifest", file=str(path)) from None
    except csv.Error as e:
        raise DataError(f"line {src.pos}: not valid CSV ({e})", file=str(path), row=0) from None
    records: list[Record] = []
    number = 0  # data rows so far, bad ones included, so that row numbers match the file
    while True:
        start = src.pos  # index of the line the next record starts on
        if start < len(lines) and lines[start] is None:
            number += 1
            _report(problems, DataError(f"line {start + 1}: not valid UTF-8", file=str(path), row=number))
            src.pos = start + 1
            continue
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            number += 1
            _report(problems, DataError(f"line {start + 1}: not valid CSV ({e})", file=str(path), row=number))
            src.pos, reader = start + 1, csv.reader(src)
            continue
        if not values:
            continue  # blank line
        number += 1
        if len(values) != len(header):
            reason = f"line {start + 1}: {len(values)} fields where the header has {len(header)}"
            _report(problems, DataError(reason, file=str(path), row=number))
            # a record spanning lines (an unterminated quote) swallowed good rows: resume after its first
            src.pos, reader = start + 1, csv.reader(src)
            continue
        records.append((number, dict(zip(header, values, strict=True))))
    return header, records


def _read_jsonl(
    path: Path, lines: list[str | None], problems: list[DataError] | None
) -> tuple[list[str], list[Record]]:
    columns: dict[str, None] = {}
    records: list[Record] = []
    for number, line in enumerate(lines, start=1):
        if line is None:
            _report(problems, DataError(f"line {number}: not valid UTF-8", file=str(path), row=number))
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            reason = f"line {number}: not valid JSON ({e.msg})"
            _report(problems, DataError(reason, file=str(path), row=number))
            continue
        except RecursionError:  # json's decoder recurses per nesting level
            reason = f"line {number}: not valid JSON (nested too deeply)"
            _report(problems, DataError(reason, file=str(path), row=number))
            continue
        if not isinstance(obj, dict):
            _report(problems, DataError(f"line {number}: expected a JSON object", file=str(path), row=number))
            continue
        cells = {k: "" if v is None else str(v) for k, v in obj.items()}
        columns.update(dict.fromkeys(cells))
        records.append((number, cells))
    return list(columns), records
