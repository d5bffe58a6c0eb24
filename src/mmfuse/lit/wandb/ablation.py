"""The ``mmfuse ablate`` table in W&B: a table of every modality subset, and its metrics in the summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl

from mmfuse.lit.wandb.logger import WandbLogger
from mmfuse.lit.wandb.run_identity import is_live


def log_ablation(trainer: pl.Trainer, rows: Sequence[dict[str, Any]]) -> str | None:
    """Log the ablation to the trainer's W&B run and finish it (rank 0); returns where the run is.

    ``rows`` are ``mmfuse ablate``'s: ``{"name", "modalities", "metrics", "samples_without_input"}``,
    the full set of modalities first. The run gets the table ``ablation`` (one row per subset) and
    ``ablation/<subset>/<metric>`` in its summary; its ``test/...`` summary is the full set's (each
    subset's test wrote over it).
    """
    import wandb

    logger = next((lg for lg in trainer.loggers if isinstance(lg, WandbLogger)), None)
    if logger is None or not trainer.is_global_zero or not rows:
        return None
    run = logger.experiment
    if is_live(run):
        keys = sorted({k for r in rows for k in r["metrics"] if "/presence/" not in k})
        table = wandb.Table(columns=["modalities", *keys, "samples_without_input"])
        for r in rows:
            table.add_data(r["name"], *(r["metrics"].get(k) for k in keys), r["samples_without_input"])
        run.log({"ablation": table})
        run.summary.update({f"ablation/{r['name']}/{k}": v for r in rows for k, v in r["metrics"].items()})
        run.summary.update(rows[0]["metrics"])
    return logger.finish()
