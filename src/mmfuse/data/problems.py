"""Check a manifest and every file it references, in parallel, and collect every problem.

:func:`check` is what ``mmfuse check-data`` runs; :func:`scan` (decode rows in DataLoader workers,
return problems instead of raising) is also what ``on_bad_sample: skip`` runs before training.
"""

from __future__ import annotations

import csv
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader, Dataset

from mmfuse.data.decode import Status, decode_row, missing_columns
from mmfuse.data.manifest.errors import DataError
from mmfuse.data.manifest.manifest import SPLITS, Manifest, Row
from mmfuse.data.manifest.source import ManifestSource
from mmfuse.data.manifest.splits import empty_splits, unseen_classes
from mmfuse.data.modalities.base import ModalityDataModule

UNKNOWN_SPLIT = "unknown"  # the split of a row that could not be read far enough to know it
PROBLEM_COLUMNS = ["split", "row", "id", "column", "file", "reason"]
RowResult = tuple[tuple[Status, ...], list[DataError]]  # (status per modality, problems)


class _Chunks(Dataset[list[RowResult]]):
    """Rows in chunks: one item decodes a chunk of rows, so few results cross between processes."""

    def __init__(
        self,
        manifest: Manifest,
        rows: Sequence[Row],
        modalities: Mapping[str, ModalityDataModule],
        chunk: int,
    ) -> None:
        self.manifest = manifest
        self.rows = list(rows)
        self.modalities = dict(modalities)
        self.chunk = chunk

    def __len__(self) -> int:
        return -(-len(self.rows) // self.chunk)

    def __getitem__(self, index: int) -> list[RowResult]:
        out: list[RowResult] = []
        for row in self.rows[index * self.chunk : (index + 1) * self.chunk]:
            decoded = decode_row(self.manifest, row, self.modalities, train=False)
            out.append((tuple(decoded.status[m] for m in self.modalities), decoded.problems))
        return out


def _keep(items: list[RowResult]) -> list[RowResult]:
    return items


def scan(
    manifest: Manifest,
    rows: Sequence[Row],
    modalities: Mapping[str, ModalityDataModule],
    num_workers: int = 2,
) -> list[RowResult]:
    """Decode every row (every non-empty cell, the target) in ``num_workers`` processes.

    ``modalities`` come in sorted name order (the join and :func:`check` sort them where received).

    The modalities must be fitted already (e.g. a text vocabulary). Nothing raises for a bad row:
    its problems are returned.

    Returns:
        one ``(status per modality in sorted name order, problems)`` per row, in the order of ``rows``.
    """
    if not rows:
        return []
    workers = max(0, num_workers)
    chunk = max(8, min(256, len(rows) // max(1, 8 * workers)))  # ~8 chunks per worker keeps them busy
    loader = DataLoader(
        _Chunks(manifest, rows, modalities, chunk),
        batch_size=None,
        num_workers=workers,
        collate_fn=_keep,
    )
    return [result for part in loader for result in part]


@dataclass
class Report:
    """What :func:`check` found.

    Attributes:
        manifest: the manifest file.
        modalities: modality name -> its column, for the modalities whose column exists.
        rows: split -> number of rows in the manifest (``unknown``: rows whose split could not be read).
        coverage: split -> modality -> status (present / missing / broken) -> rows.
        classes: the class names.
        class_counts: split -> class name -> rows with that (valid) target.
        problems: every problem, in row order; file-level problems (no row) first.
        seconds: how long the check took.
    """

    manifest: str
    modalities: dict[str, str]
    rows: dict[str, int] = field(default_factory=dict)
    coverage: dict[str, dict[str, Counter[str]]] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    class_counts: dict[str, Counter[str]] = field(default_factory=dict)
    problems: list[DataError] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def ok(self) -> bool:
        return not self.problems


def check(
    source: ManifestSource, modalities: Mapping[str, ModalityDataModule], num_workers: int = 2
) -> Report:
    """Check the manifest and every file it references, for every split; collect every problem.

    Decoding uses each modality's own ``load``, so what is reported here is exactly what training
    would fail on (``on_bad_sample: error``) or skip (``on_bad_sample: skip``).
    """
    start = time.perf_counter()
    report = Report(manifest=str(source.path), modalities={})
    problems: list[DataError] = []
    try:
        source.prepare()
        manifest = source.load(problems)
    except DataError as e:  # the file as a whole is unusable: nothing more can be checked
        report.problems = [*problems, e]
        report.seconds = time.perf_counter() - start
        return report
    modalities = dict(sorted(modalities.items()))  # the boundary: every later step keeps this order
    problems += missing_columns(manifest, modalities)
    usable = {name: dm for name, dm in modalities.items() if dm.column in manifest.columns}
    report.modalities = {name: dm.column for name, dm in usable.items()}
    report.classes = list(manifest.classes)
    for error in problems:
        split = error.split or UNKNOWN_SPLIT
        report.rows[split] = report.rows.get(split, 0) + (error.row is not None)
    train_rows = manifest.split("train")
    for dm in usable.values():
        dm.fit([c for r in train_rows if (c := r.cells.get(dm.column, "")).strip()])
    results = scan(manifest, manifest.rows, usable, num_workers)
    for row, (status, row_problems) in zip(manifest.rows, results, strict=True):
        report.rows[row.split] = report.rows.get(row.split, 0) + 1
        cover = report.coverage.setdefault(row.split, {m: Counter() for m in usable})
        for name, s in zip(usable, status, strict=True):
            cover[name][s] += 1
        target = manifest.target  # class counts: of the first multiclass task
        if target and not manifest.target_problems(row) and (value := row.cells.get(target, "").strip()):
            report.class_counts.setdefault(row.split, Counter())[value] += 1
        problems.extend(row_problems)
    problems += empty_splits(manifest) + unseen_classes(manifest)  # the splits as a whole
    report.problems = sorted(problems, key=lambda e: -1 if e.row is None else e.row)
    report.rows = {s: report.rows[s] for s in (*SPLITS, UNKNOWN_SPLIT) if report.rows.get(s)}
    report.seconds = time.perf_counter() - start
    return report


def reason_kind(reason: str) -> str:
    """A reason without its particulars, for counting problems by kind.

    ``"cannot decode image: broken data stream"`` -> ``"cannot decode image"``;
    ``"duplicate id (first seen in row 3)"`` -> ``"duplicate id"``.
    """
    text = re.sub(r"^line \d+: ", "", reason)
    text = re.split(r": | \(| \[", text, maxsplit=1)[0]
    text = re.sub(r"'[^']*'", "…", text)
    return re.sub(r"\d+", "N", text).strip()


def problem_row(error: DataError) -> dict[str, Any]:
    """One problem as a CSV row: ``split, row, id, column, file, reason``."""
    return {
        "split": error.split or (UNKNOWN_SPLIT if error.row is not None else ""),
        "row": "" if error.row is None else error.row,
        "id": error.sample_id or "",
        "column": error.column or "",
        "file": error.file or "",
        "reason": error.reason,
    }


def write_problems(path: Path, problems: Sequence[DataError]) -> Path:
    """Write problems to a CSV file with columns ``split, row, id, column, file, reason``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=PROBLEM_COLUMNS)
        writer.writeheader()
        writer.writerows(problem_row(e) for e in problems)
    return path
