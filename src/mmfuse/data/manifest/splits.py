"""Problems of the splits as a whole: an empty split, a class that only val or test has.

They are not problems of one row, so no row can be skipped for them: ``mmfuse check-data`` lists
them and ``fit`` refuses to start (see ``MultimodalDataModule.setup``).
"""

from __future__ import annotations

from collections.abc import Sequence

from mmfuse.data.manifest.errors import DataError
from mmfuse.data.manifest.manifest import SPLITS, Manifest, Row

_SHOWN_ROWS = 5  # rows and ids named per val/test-only class


def split_sizes(manifest: Manifest) -> str:
    """``train=8, val=2, test=0``."""
    return ", ".join(f"{s}={len(manifest.split(s))}" for s in SPLITS)


def empty_splits(manifest: Manifest, splits: Sequence[str] = SPLITS) -> list[DataError]:
    """One problem per split of ``splits`` with no row."""
    out = []
    for split in splits:
        if manifest.split(split):
            continue
        out.append(
            DataError(
                f"the {split!r} split has no rows (rows per split: {split_sizes(manifest)}); "
                f"give some rows split {split!r} (or, without a split column, raise val_fraction / "
                "test_fraction)",
                file=str(manifest.path),
                split=split,
            )
        )
    return out


def unseen_classes(manifest: Manifest) -> list[DataError]:
    """One problem per class learnt from the data that has val or test rows but no train row.

    Such a class gets an output the model never sees an example of. A class listed in the config's
    ``classes`` is the user's decision and not reported.
    """
    out = []
    for task in manifest.tasks:
        if task.kind != "multiclass" or task.name not in manifest.inferred_classes:
            continue
        column = task.target_columns[0]
        if column not in manifest.columns:
            continue
        names = set(task.names)
        by_class: dict[str, list[Row]] = {}
        for row in manifest.rows:
            value = row.cells.get(column, "").strip()
            if value in names:
                by_class.setdefault(value, []).append(row)
        for name in task.names:
            rows = by_class.get(name, [])
            splits = sorted({r.split for r in rows}, key=SPLITS.index)
            if not rows or "train" in splits:
                continue
            shown = ", ".join(f"{r.row} ({r.id!r})" for r in rows[:_SHOWN_ROWS])
            more = f" and {len(rows) - _SHOWN_ROWS} more" if len(rows) > _SHOWN_ROWS else ""
            out.append(
                DataError(
                    f"class {name!r} of task {task.name!r} is only in {' and '.join(splits)}, never in "
                    f"train: rows {shown}{more}; list it in `classes` to keep it as a class "
                    "without training examples, or fix or move these rows",
                    file=str(manifest.path),
                    column=column,
                    split=splits[0] if len(splits) == 1 else None,
                )
            )
    return out


def refuse_bad_splits(manifest: Manifest) -> None:
    """Before training: every split has rows (fit tests at the end), and no class learnt from the
    data is missing from train. ``mmfuse check-data`` lists the same problems.

    Raises:
        DataError: the problem, or one naming them all when there are several.
    """
    problems = empty_splits(manifest) + unseen_classes(manifest)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        reasons = "; ".join(p.reason for p in problems)
        raise DataError(f"{len(problems)} problems with the splits: {reasons}", file=str(manifest.path))
