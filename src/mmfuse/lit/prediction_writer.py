"""PredictionWriter: what `mmfuse predict` writes, one CSV row per sample, each id once under DDP."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch.distributed as dist
from pytorch_lightning.callbacks import BasePredictionWriter

from mmfuse.lit.run_directory import run_directory


class PredictionWriter(BasePredictionWriter):
    """Writes ``predict`` results to one CSV, one row per sample id.

    One multiclass task: ``id``, ``prediction`` (the class name), ``label`` (the true class name),
    ``correct`` (``1`` where ``prediction == label``, else ``0``), one ``prob_<class>`` per class.
    ``label`` and ``correct`` are empty where the sample has no target (an unlabelled split or
    an empty cell). Several tasks: ``id``, then per task the same columns prefixed ``<task>/``
    (multiclass); ``<task>/prob_<label>`` (multilabel, sigmoid probabilities) and
    ``<task>/label_<label>`` (the truth, ``1``/``0``, empty where unknown); or
    ``<task>/prediction`` and ``<task>/label`` (regression, the values). One multilabel or
    regression task alone: the same columns without the ``<task>/`` prefix.

    Under DDP every process's predictions are gathered to rank 0, which writes each id once
    (the distributed sampler may repeat samples to even out the processes).

    Args:
        output: CSV path; default ``predictions.csv`` in the run directory.
    """

    def __init__(self, output: str | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.output = output
        self.written: Path | None = None

    def write_on_epoch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        predictions: Sequence[Any],
        batch_indices: Sequence[Any],
    ) -> None:
        rows: list[tuple[str, dict[str, list[float] | float], dict[str, Any]]] = []
        for batch in predictions:
            outputs = {task: values.tolist() for task, values in batch["outputs"].items()}
            # a module whose predict_step returns no targets writes empty label cells
            targets = {task: values.tolist() for task, values in batch.get("targets", {}).items()}
            for i, sample_id in enumerate(batch["ids"]):
                values = {task: v[i] for task, v in outputs.items()}
                rows.append((sample_id, values, {task: v[i] for task, v in targets.items()}))
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            gathered: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, rows)
            rows = [r for part in gathered for r in part]
        if trainer.global_rank != 0:
            return
        tasks: list[dict[str, Any]] = list(getattr(pl_module, "tasks", []))
        path = Path(self.output) if self.output else run_directory(trainer) / "predictions.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        seen: set[str] = set()
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["id", *(c for t in tasks for c in _columns(t, len(tasks) > 1))])
            for sample_id, values, truth in rows:
                if sample_id in seen:
                    continue
                seen.add(sample_id)
                cells = (c for t in tasks for c in _cells(t, values[t["name"]], truth.get(t["name"])))
                writer.writerow([sample_id, *cells])
        self.written = path


def _columns(task: dict[str, Any], prefixed: bool) -> list[str]:
    """The CSV columns of one task's predictions and true targets."""
    prefix = f"{task['name']}/" if prefixed else ""
    probs = [f"{prefix}prob_{n}" for n in task["names"]]
    if task["kind"] == "multilabel":
        return [*probs, *(f"{prefix}label_{n}" for n in task["names"])]
    if task["kind"] == "regression":
        return [f"{prefix}prediction", f"{prefix}label"]
    return [f"{prefix}prediction", f"{prefix}label", f"{prefix}correct", *probs]


def _cells(task: dict[str, Any], value: list[float] | float, truth: Any = None) -> list[str]:
    """One task's prediction and true target for one sample as CSV cells (in :func:`_columns` order).

    ``truth`` is the batch's target: a class index (``-1`` unknown), a value or one 0/1 per label
    (NaN unknown), or None where the predict step returned none.
    """
    if not isinstance(value, list):  # regression: the value
        label = "" if truth is None or math.isnan(truth) else f"{truth:.6g}"
        return [f"{value:.6g}", label]
    probs = [f"{p:.6f}" for p in value]
    if task["kind"] == "multilabel":
        known = truth if isinstance(truth, list) else [math.nan] * len(value)
        return [*probs, *("" if math.isnan(t) else str(int(t)) for t in known)]
    best = max(range(len(value)), key=value.__getitem__)  # the first of equal maxima, as argmax
    index = -1 if truth is None else int(truth)
    if index < 0:
        return [task["names"][best], "", "", *probs]
    return [task["names"][best], task["names"][index], str(int(best == index)), *probs]
