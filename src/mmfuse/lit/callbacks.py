"""Callbacks the CLI adds to every run."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch.distributed as dist
from pytorch_lightning.callbacks import BasePredictionWriter

from mmfuse.lit.run_directory import run_directory


class PredictionWriter(BasePredictionWriter):
    """Writes ``predict`` results to one CSV, one row per sample id.

    One multiclass task: ``id``, ``prediction`` (the class name), one ``prob_<class>`` per class.
    Several tasks: ``id``, then per task ``<task>/prediction`` and ``<task>/prob_<class>``
    (multiclass), ``<task>/prob_<label>`` (multilabel, sigmoid probabilities) or
    ``<task>/prediction`` (regression, the value). One multilabel or regression task alone: the
    same columns without the ``<task>/`` prefix.

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
        rows: list[tuple[str, dict[str, list[float] | float]]] = []
        for batch in predictions:
            outputs = {task: values.tolist() for task, values in batch["outputs"].items()}
            for i, sample_id in enumerate(batch["ids"]):
                rows.append((sample_id, {task: values[i] for task, values in outputs.items()}))
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
            for sample_id, values in rows:
                if sample_id in seen:
                    continue
                seen.add(sample_id)
                writer.writerow([sample_id, *(c for t in tasks for c in _cells(t, values[t["name"]]))])
        self.written = path


def _columns(task: dict[str, Any], prefixed: bool) -> list[str]:
    """The CSV columns of one task's predictions."""
    prefix = f"{task['name']}/" if prefixed else ""
    probs = [f"{prefix}prob_{n}" for n in task["names"]]
    if task["kind"] == "multilabel":
        return probs
    if task["kind"] == "regression":
        return [f"{prefix}prediction"]
    return [f"{prefix}prediction", *probs]


def _cells(task: dict[str, Any], value: list[float] | float) -> list[str]:
    """One task's prediction for one sample as CSV cells (in :func:`_columns` order)."""
    if not isinstance(value, list):  # regression: the value
        return [f"{value:.6g}"]
    probs = [f"{p:.6f}" for p in value]
    if task["kind"] == "multilabel":
        return probs
    best = max(range(len(value)), key=value.__getitem__)  # the first of equal maxima, as argmax
    return [task["names"][best], *probs]
