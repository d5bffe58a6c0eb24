"""The run's record of rows its data left out: printed, logged and listed in the run directory.

The data decides which rows are left out and why (:mod:`mmfuse.data.selection`); this is where the
Lightning run records it (the data printed one line per split): the counts as ``data/<split>/...``
metrics, and ``skipped_samples.csv`` in the run directory.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from rich.console import Console
from rich.markup import escape

from mmfuse.data.problems import write_problems
from mmfuse.data.selection import SKIPPED_CSV
from mmfuse.lit.run_directory import run_directory


def report_skipped_rows(trainer: pl.Trainer, datamodule: object) -> Path | None:
    """Log and list what ``datamodule``'s last ``setup`` left out (rank 0 writes; every rank clears it).

    Returns:
        the CSV's path, when one was written.
    """
    take = getattr(datamodule, "take_skip_report", None)
    report = take() if take is not None else None
    if report is None or not trainer.is_global_zero:
        return None
    console = Console(soft_wrap=True, stderr=True)
    if trainer.logger is not None:
        trainer.logger.log_metrics(report.metrics, step=trainer.global_step)
    path = write_problems(run_directory(trainer) / SKIPPED_CSV, report.skipped)
    console.print(f"[bold yellow]data[/bold yellow] skipped rows listed in {escape(str(path))}")
    return path
