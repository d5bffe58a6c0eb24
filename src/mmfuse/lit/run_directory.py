"""The run directory: the one folder per run that holds its checkpoints, config and results."""

from __future__ import annotations

import os
from pathlib import Path

import pytorch_lightning as pl


def run_directory(trainer: pl.Trainer) -> Path:
    """``<save_dir>/<name>/<version>``, the folder whose ``checkpoints/`` ModelCheckpoint writes to.

    The same rule for every logger, so checkpoints, ``config.yaml``, ``test_metrics.json`` and
    ``predictions.csv`` always share one folder under ``trainer.default_root_dir``:

    - CSV / TensorBoard: ``<root>/lightning_logs/version_N`` (their ``log_dir``);
    - Weights & Biases: ``<root>/<project>/<run id>`` (Lightning's ``trainer.log_dir`` is only
      ``<root>`` there, shared by every run).

    Without a logger it is ``default_root_dir``. Under W&B the run id exists on rank 0 only: call
    this on rank 0.
    """
    logger = trainer.logger
    if logger is None:
        return Path(trainer.default_root_dir)
    save_dir = logger.save_dir if logger.save_dir is not None else trainer.default_root_dir
    version = logger.version
    version = version if isinstance(version, str) else f"version_{version}"
    return Path(os.path.join(save_dir, str(logger.name), version))
