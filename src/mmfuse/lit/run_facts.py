"""RunFacts: throughput, parameter counts, the best and test metrics, and the run's id in checkpoints."""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.loggers import WandbLogger
from torch import nn

from mmfuse.lit.wandb.run_identity import CHECKPOINT_KEY, is_live


class RunFacts(pl.Callback):
    """Facts about a run that its metrics do not say. Added to every run by the CLI.

    - ``train/samples_per_sec`` each epoch (all processes together; the train batches only, the
      data loading included): with any logger.
    - With a W&B logger, in the run summary: ``params/<modality>`` (each encoder), ``params/fusion``,
      ``params/head``, ``params/total``, ``params/trainable``; ``best/<monitor>`` with its
      ``best/epoch``, ``best/global_step`` and ``best/checkpoint``, kept up to date as checkpoints
      are written; the ``test/...`` metrics at the end.
    - With a W&B logger, every checkpoint stores the run's id (``checkpoint["wandb_run"]``), so
      resuming from it continues the same run.
    """

    def __init__(self) -> None:
        self._samples = 0
        self._start: float | None = None
        self._stop: float | None = None
        self._best_path = ""

    @staticmethod
    def _run(trainer: pl.Trainer) -> Any:
        logger = next((lg for lg in trainer.loggers if isinstance(lg, WandbLogger)), None)
        if logger is None or not trainer.is_global_zero:
            return None
        run = logger.experiment
        return run if is_live(run) else None

    # --- parameters ----------------------------------------------------------------------------

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        run = self._run(trainer)
        if run is not None:
            run.summary.update(parameter_counts(pl_module))

    # --- throughput ------------------------------------------------------------------------------

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._samples, self._start, self._stop = 0, time.perf_counter(), None

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        try:
            self._samples += len(batch)
        except TypeError:
            return
        self._stop = time.perf_counter()  # the last train batch: validation is not throughput

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._start is not None and self._stop is not None and self._stop > self._start:
            rate = self._samples / (self._stop - self._start)
            # per process, summed over processes: the job's throughput
            pl_module.log("train/samples_per_sec", rate, reduce_fx="sum", sync_dist=True)

    # --- test ------------------------------------------------------------------------------------

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        run = self._run(trainer)
        if run is not None:
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
            run.summary.update(metrics)

    # --- the run's id in every checkpoint --------------------------------------------------------

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        run = self._run(trainer)
        if run is None:
            return
        checkpoint[CHECKPOINT_KEY] = {"id": run.id, "project": run.project, "entity": run.entity or None}
        # ModelCheckpoint has just chosen a new best (it saves it now): this is its epoch and step
        callback = trainer.checkpoint_callback
        score = getattr(callback, "best_model_score", None)
        monitor = getattr(callback, "monitor", None)
        best_path = str(getattr(callback, "best_model_path", ""))
        if score is not None and monitor and best_path != self._best_path:
            self._best_path = best_path
            run.summary.update(
                {
                    f"best/{monitor}": float(score),
                    "best/epoch": trainer.current_epoch,
                    "best/global_step": trainer.global_step,
                    "best/checkpoint": best_path,
                }
            )


def parameter_counts(pl_module: nn.Module) -> dict[str, int]:
    """Parameter counts: ``params/<modality>`` (each encoder), ``params/fusion``, ``params/head``,
    ``params/total`` and ``params/trainable``."""
    counts: dict[str, int] = {}
    model = getattr(pl_module, "model", None)
    model = getattr(model, "_orig_mod", model)
    if model is not None:
        for name, encoder in getattr(model, "encoders", {}).items():
            counts[f"params/{name}"] = _count(encoder)
        if isinstance(getattr(model, "fusion", None), nn.Module):
            counts["params/fusion"] = _count(model.fusion)
        heads = [
            getattr(model, attr)
            for attr in ("head", "heads")
            if isinstance(getattr(model, attr, None), nn.Module)
        ]
        if heads:
            counts["params/head"] = sum(_count(h) for h in heads)
    counts["params/total"] = _count(pl_module)
    counts["params/trainable"] = sum(p.numel() for p in pl_module.parameters() if p.requires_grad)
    return counts


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
