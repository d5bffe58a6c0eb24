"""Which manifest rows a run uses (``join``, ``on_bad_sample``), with a record of every row left out.

Nothing is lost silently: for every split, rows used + rows skipped = rows in the manifest, and
the skipped ones are listed (``skipped_samples.csv`` in the run directory) with their reasons.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch.distributed as dist

from mmfuse.data.manifest.errors import DataError
from mmfuse.data.manifest.manifest import SPLITS, Manifest, Row
from mmfuse.data.modalities.base import ModalityDataModule
from mmfuse.data.problems import UNKNOWN_SPLIT, reason_kind, scan

OnBadSample = Literal["error", "skip"]
Join = Literal["outer", "inner"]
SKIPPED_CSV = "skipped_samples.csv"  #: where the run directory lists a run's skipped rows


class RowSelection:
    """The rows of each split that a run uses.

    - ``join="inner"``: a row with an empty cell in any configured modality is left out.
    - ``on_bad_sample="skip"``: a row that ``mmfuse check-data`` would report is left out. The rows
      are decoded once, in ``num_workers`` DataLoader workers; under DDP each process decodes a
      shard and the processes share what they found, so every process leaves out the same rows.

    Args:
        manifest: the manifest, loaded with a problems list in skip mode.
        modalities: modality name -> its DataModule (fitted), in sorted name order.
        on_bad_sample: ``error`` (bad rows stay, and raise when loaded) or ``skip``.
        join: ``outer`` (partial rows stay, with absent modalities masked) or ``inner``.
        load_problems: the rows the manifest reader left out (skip mode), each a DataError.
        num_workers: worker processes for decoding.
    """

    def __init__(
        self,
        manifest: Manifest,
        modalities: Mapping[str, ModalityDataModule],
        on_bad_sample: OnBadSample,
        join: Join,
        load_problems: Iterable[DataError] = (),
        num_workers: int = 0,
    ) -> None:
        self.manifest = manifest
        self.modalities = dict(modalities)
        self.on_bad_sample = on_bad_sample
        self.join = join
        self.num_workers = num_workers
        self.load_problems = list(load_problems)
        self.dropped: dict[int, list[DataError]] = {}  # row number -> why it is left out
        self.prepared: set[str] = set()
        self.reported: set[str] = set()  # splits whose losses were reported (see report)

    def prepare(self, splits: Iterable[str]) -> list[str]:
        """Decide which rows of ``splits`` are left out (decoding them in skip mode).

        Returns:
            the splits prepared by this call (those not prepared before).
        """
        todo = [s for s in dict.fromkeys(splits) if s in SPLITS and s not in self.prepared]
        rows = [r for s in todo for r in self.manifest.split(s) if not self._inner_drop(r)]
        if self.on_bad_sample == "skip" and rows:
            world, rank = _world()
            mine = rows[rank::world]
            results = scan(self.manifest, mine, self.modalities, self.num_workers)
            bad = [(row.row, found) for row, (_, found) in zip(mine, results, strict=True) if found]
            if world > 1:
                gathered: list[Any] = [None] * world
                dist.all_gather_object(gathered, bad)
                bad = [b for part in gathered for b in part]
            self.dropped.update(bad)
        self.prepared.update(todo)
        return todo

    def _inner_drop(self, row: Row) -> bool:
        if self.join != "inner":
            return False
        empty = [n for n, dm in self.modalities.items() if not row.cells.get(dm.column, "").strip()]
        if empty:
            reason = f"inner join: modality {empty[0]!r} is empty" + (
                f" (and {empty[1:]})" if empty[1:] else ""
            )
            column = self.modalities[empty[0]].column
            self.dropped[row.row] = [DataError.in_row(reason, row, str(self.manifest.path), column)]
        return bool(empty)

    def rows(self, split: str, labelled: bool = True) -> list[Row]:
        """The rows used for ``split`` (``all``: every split); ``labelled=False`` (predict) keeps rows
        whose only problem is their target."""
        self.prepare(SPLITS if split == "all" else [split])
        rows = self.manifest.rows if split == "all" else self.manifest.split(split)
        targets = set(self.manifest.target_columns)

        def used(row: Row) -> bool:
            problems = self.dropped.get(row.row)
            return not problems or (not labelled and all(p.column in targets for p in problems))

        return [r for r in rows if used(r)]

    # --- the record of what was left out ------------------------------------------------------

    def skipped(self) -> list[DataError]:
        """One entry per skipped row (its problems merged), manifest-level ones included, in row order."""
        merged = [_merge(p) for p in self.dropped.values()]
        if self.on_bad_sample == "skip":
            merged += self.load_problems
        return sorted(merged, key=lambda e: e.row or 0)

    def accounting(self) -> dict[str, dict[str, int]]:
        """split -> ``{"rows", "used", "skipped"}`` for the prepared splits (+ ``unknown`` when any)."""
        skipped = Counter(e.split or UNKNOWN_SPLIT for e in self.skipped())
        out = {}
        for split in [s for s in SPLITS if s in self.prepared]:
            used = len(self.rows(split))
            out[split] = {"rows": used + skipped[split], "used": used, "skipped": skipped[split]}
        if skipped[UNKNOWN_SPLIT]:
            n = skipped[UNKNOWN_SPLIT]
            out[UNKNOWN_SPLIT] = {"rows": n, "used": 0, "skipped": n}
        return out

    def summary(self, splits: Iterable[str] | None = None) -> list[str]:
        """One line per split that lost rows: how many, of how many, and why (by kind of reason).

        Args:
            splits: only these splits (``unknown`` included); default every prepared one.
        """
        by_split: dict[str, Counter[str]] = {}
        for e in self.skipped():
            for reason in e.reason.split(" | "):
                by_split.setdefault(e.split or UNKNOWN_SPLIT, Counter())[reason_kind(reason)] += 1
        lines = []
        wanted = None if splits is None else set(splits)
        for split, count in self.accounting().items():
            if count["skipped"] and (wanted is None or split in wanted):
                reasons = ", ".join(f"{k} {n}" for k, n in by_split[split].most_common())
                lines.append(
                    f"{split}: skipped {count['skipped']} of {count['rows']} rows, "
                    f"using {count['used']} ({reasons})"
                )
        return lines

    def report(self, splits: Iterable[str]) -> SkipReport | None:
        """What was left out, when ``splits`` were just prepared: None when they lost no row.

        The first report also covers rows of no known split (``unknown``). Its ``skipped`` lists
        every split prepared so far, so the CSV written from it replaces the previous one.
        """
        splits = list(splits)
        first = not self.reported
        self.reported.update(splits)
        lines = self.summary([*splits, UNKNOWN_SPLIT] if first else splits)
        if not lines:
            return None
        counts = self.accounting()
        metrics = {f"data/{split}/{k}": float(v) for split, c in counts.items() for k, v in c.items()}
        return SkipReport(lines, metrics, self.skipped())


@dataclass(frozen=True)
class SkipReport:
    """What a run's data left out: printed by the data, logged and written by the Lightning layer.

    Attributes:
        lines: one line per split that lost rows (how many, of how many, why).
        metrics: ``data/<split>/rows``, ``/used``, ``/skipped`` for every prepared split.
        skipped: every skipped row so far, for ``skipped_samples.csv`` (:func:`write_problems`).
    """

    lines: list[str]
    metrics: dict[str, float]
    skipped: list[DataError]


def _merge(problems: list[DataError]) -> DataError:
    """Several problems of one row as one entry; fields that differ are joined with `` | ``."""
    if len(problems) == 1:
        return problems[0]

    def join(values: Iterable[str | None]) -> str | None:
        kept = list(dict.fromkeys(v for v in values if v))
        return " | ".join(kept) if kept else None

    first = problems[0]
    return DataError(
        " | ".join(p.reason for p in problems),
        file=join(p.file for p in problems),
        row=first.row,
        sample_id=first.sample_id,
        column=join(p.column for p in problems),
        split=first.split,
    )


def per_class(rows: list[Row], manifest: Manifest, k: int, seed: int) -> list[Row]:
    """At most ``k`` rows of each class of the first multiclass task, drawn by ``seed``: few-label training.

    Each class's rows are shuffled by a generator seeded with ``seed`` and the first ``k`` kept; the
    draw depends only on (rows, k, seed), and the same seed gives nested subsets (``k=1`` is inside
    ``k=5``). Rows without a class are left out. The kept rows stay in manifest order.

    Raises:
        DataError: ``k < 1``, or the manifest has no multiclass task.
    """
    if k < 1:
        raise DataError(f"train_per_class must be >= 1, got {k}", file=str(manifest.path))
    if manifest.target is None:
        raise DataError(
            "train_per_class needs a multiclass task (a target with classes)", file=str(manifest.path)
        )
    by_class: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        label = manifest.target_index(row)
        if label >= 0:
            by_class.setdefault(label, []).append(i)
    rng = np.random.default_rng(seed)
    kept = [j for c in sorted(by_class) for j in rng.permutation(by_class[c])[:k].tolist()]
    return [rows[j] for j in sorted(kept)]


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0
