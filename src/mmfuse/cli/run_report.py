"""What a command prints and writes as it ends: its metrics (``<stage>_metrics.json`` in the run
directory), the checkpoint they are of, where its W&B run is, and the run directory, last."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
from rich.console import Console

from mmfuse.lit.run_directory import run_directory
from mmfuse.lit.wandb.logger import WandbLogger

# soft_wrap: paths are printed whole, never broken across lines
console = Console(soft_wrap=True)


def report_metrics(
    trainer: pl.Trainer, results: Sequence[Mapping[str, Any]], checkpoint: str, stage: str = "test"
) -> None:
    """Write ``<stage>_metrics.json`` (the checkpoint and every metric) into the run directory, print
    the metrics, the checkpoint, the W&B run (finished here) and the run directory (rank 0).

    Args:
        trainer: the trainer that ran the stage.
        results: what ``trainer.test``/``validate`` returned, or the stage's callback metrics.
        checkpoint: the checkpoint as the user gave it (a URL, not its copy in the cache).
        stage: ``test`` or ``val``.
    """
    if not trainer.is_global_zero:
        return
    metrics = {k: float(v) for part in results for k, v in part.items()}
    run_dir = run_directory(trainer)
    run_dir.mkdir(parents=True, exist_ok=True)
    out = run_dir / f"{stage}_metrics.json"
    out.write_text(json.dumps({"checkpoint": checkpoint, **metrics}, indent=2) + "\n")
    console.print(
        f"[bold]{stage} metrics[/bold] " + "  ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
    )
    console.print(f"[bold]checkpoint[/bold] {checkpoint}")
    finish_wandb(trainer)
    console.print(f"[bold]run directory[/bold] {run_dir}")


def finish_wandb(trainer: pl.Trainer) -> None:
    """End the W&B run and say where it is: its URL, or the `wandb sync` command that uploads it."""
    for logger in trainer.loggers:
        where = logger.finish() if isinstance(logger, WandbLogger) else None
        if where:
            console.print(f"[bold]W&B[/bold] {where}")
