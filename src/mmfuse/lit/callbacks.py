"""Callbacks the CLI adds to every run."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.callbacks import BasePredictionWriter

from mmfuse.lit.run_directory import run_directory


class PredictionWriter(BasePredictionWriter):
    """Writes ``predict`` results to one CSV: ``id``, the predicted class name, one probability per class.

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
        rows: list[tuple[str, list[float]]] = []
        for batch in predictions:
            rows.extend(zip(batch["ids"], batch["probs"].tolist(), strict=True))
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            gathered: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, rows)
            rows = [r for part in gathered for r in part]
        if trainer.global_rank != 0:
            return
        class_names: list[str] = list(getattr(pl_module, "class_names", []))
        path = Path(self.output) if self.output else run_directory(trainer) / "predictions.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        seen: set[str] = set()
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "prediction", *(f"prob_{c}" for c in class_names)])
            for sample_id, probs in rows:
                if sample_id in seen:
                    continue
                seen.add(sample_id)
                best = int(torch.tensor(probs).argmax())
                writer.writerow([sample_id, class_names[best], *(f"{p:.6f}" for p in probs)])
        self.written = path
