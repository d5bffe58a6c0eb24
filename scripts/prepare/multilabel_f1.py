"""Micro-, macro-, weighted- and sample-averaged F1 of a multilabel task, from ``mmfuse predict``'s CSV.

mmfuse logs the macro F1 of a multilabel task (``test/f1``); papers on MM-IMDb also report the micro
(and weighted, samples) averages. This reads the ``prob_<label>`` and ``label_<label>`` columns that
``predict`` writes (``<task>/prob_<label>`` with several tasks: ``--task``), predicts every label whose
probability is at least ``--threshold``, and prints the four averages as scikit-learn defines them
(a label or sample with no true and no predicted label counts F1 = 0). Rows whose true labels are
empty (unknown) are left out.

    mmfuse predict --config configs/benchmarks/mmimdb.yaml --ckpt_path last
    python scripts/prepare/multilabel_f1.py --predictions <run>/eval/<time>-predict/predictions.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np


def f1_scores(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """The four F1 averages of 0/1 arrays ``(N, K)``."""
    tp = (truth & predicted).sum(axis=0).astype(float)  # (K,)
    fp = (~truth & predicted).sum(axis=0).astype(float)
    fn = (truth & ~predicted).sum(axis=0).astype(float)
    per_label = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros_like(tp), where=(2 * tp + fp + fn) > 0)
    support = truth.sum(axis=0)
    row_tp = (truth & predicted).sum(axis=1).astype(float)  # (N,)
    row_sum = truth.sum(axis=1) + predicted.sum(axis=1)
    per_row = np.divide(2 * row_tp, row_sum, out=np.zeros_like(row_tp), where=row_sum > 0)
    total = 2 * tp.sum() + fp.sum() + fn.sum()
    return {
        "micro_f1": float(2 * tp.sum() / total) if total else 0.0,
        "macro_f1": float(per_label.mean()),
        "weighted_f1": float((per_label * support).sum() / support.sum()) if support.sum() else 0.0,
        "samples_f1": float(per_row.mean()),
    }


def read(path: Path, task: str | None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Label names, true ``(N, K)`` and probabilities ``(N, K)`` from a predictions CSV."""
    prefix = f"{task}/" if task else ""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        names = [c[len(prefix) + 5 :] for c in columns if c.startswith(f"{prefix}prob_")]
        if not names or any(f"{prefix}label_{n}" not in columns for n in names):
            raise SystemExit(
                f"{path}: no {prefix}prob_<label> and {prefix}label_<label> columns (a multilabel task?)"
            )
        truth, probs = [], []
        for row in reader:
            cells = [row[f"{prefix}label_{n}"] for n in names]
            if any(c == "" for c in cells):
                continue
            truth.append([c in ("1", "1.0") for c in cells])
            probs.append([float(row[f"{prefix}prob_{n}"]) for n in names])
    if not truth:
        raise SystemExit(f"{path}: no row with known labels")
    return names, np.array(truth, dtype=bool), np.array(probs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--predictions", type=Path, required=True, help="the CSV `mmfuse predict` wrote")
    parser.add_argument("--task", help="the task's name, when the model has several tasks")
    parser.add_argument(
        "--threshold", type=float, default=0.5, help="predict a label at this probability (0.5)"
    )
    args = parser.parse_args(argv)
    names, truth, probs = read(args.predictions, args.task)
    scores = f1_scores(truth, probs >= args.threshold)
    print(f"{len(truth)} samples, {len(names)} labels, threshold {args.threshold}")
    for key, value in scores.items():
        print(f"{key} {value:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
