"""Plain progress lines for runs whose output is a file (batch systems), and the choice of a bar.

A Rich or tqdm bar redraws one line in place: written to a file it shows nothing useful until the
run ends. :class:`PlainProgress` prints ordinary lines instead, flushed as they are written::

    epoch 1/10  step 10/380  train/loss 1.381  312.4 samples/s  ETA 0:03:12
    epoch 1/10  step 38/380  end of epoch  val/acc 0.4167  val/loss 1.26  312.9 samples/s  ETA 0:02:51
"""

from __future__ import annotations

import datetime
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ProgressBar, RichProgressBar, TQDMProgressBar
from pytorch_lightning.utilities.data import extract_batch_size
from pytorch_lightning.utilities.exceptions import MisconfigurationException
from torch import Tensor


class PlainProgress(ProgressBar):
    """Lightning's progress bar as plain lines on stdout, from the first process only.

    A line every ``every_n_steps`` optimizer steps (epoch, step/total, the train metrics shown in a
    progress bar such as ``train/loss``, samples per second since the last line, ETA) and one when a
    training epoch ends, with the validation metrics shown in a progress bar (``val/acc``, ``val/f1``,
    ``val/loss``) and the checkpoint's monitor. Samples per second count all processes (this
    process's rate times the world size); the ETA extrapolates the time per step so far, validation
    included. The ``mmfuse`` command uses it instead of a Rich or tqdm bar when stdout is not a terminal.

    Args:
        every_n_steps: a line every this many optimizer steps; None: ``trainer.log_every_n_steps``.
    """

    def __init__(self, every_n_steps: int | None = None) -> None:
        super().__init__()
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"PlainProgress: every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self._enabled = True
        self._start = 0.0  # when this process started training, and at which step
        self._start_step = 0
        self._mark = (0.0, 0)  # time and samples at the last line
        self._samples = 0
        self._printed_step = -1
        self._epoch_start = (0.0, 0)

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def print(self, *args: Any, **kwargs: Any) -> None:
        if self._enabled:
            print(*args, **{"flush": True, **kwargs})  # a batch log shows each line as it is written

    # --- hooks -----------------------------------------------------------------------------------

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        now = time.perf_counter()
        self._start, self._start_step = now, trainer.global_step
        self._samples, self._mark = 0, (now, 0)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_start = (time.perf_counter(), self._samples)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._samples += _batch_size(batch)
        step = trainer.global_step
        every = self.every_n_steps or getattr(trainer, "log_every_n_steps", None) or 50
        # with gradient accumulation several batches end at the same optimizer step (0: none yet): one line
        if step in (0, self._printed_step) or step % every:
            return
        self._printed_step = step
        now = time.perf_counter()
        then, samples = self._mark
        rate = self._rate(trainer, self._samples - samples, now - then)
        self._mark = (now, self._samples)
        metrics: dict[str, Any] = {
            k: v for k, v in trainer.progress_bar_metrics.items() if k.startswith("train/")
        }
        if isinstance(outputs, dict) and "loss" in outputs:
            # this step's loss: Lightning updates progress_bar_metrics only after this hook
            metrics["train/loss"] = outputs["loss"]
        self.print(self._line(trainer, _metrics(metrics), rate, self._eta(trainer, now)))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning runs the epoch's validation before this hook: its metrics are in progress_bar_metrics
        now = time.perf_counter()
        then, samples = self._epoch_start
        rate = self._rate(trainer, self._samples - samples, now - then)
        shown: dict[str, Any] = {
            k: v for k, v in trainer.progress_bar_metrics.items() if not k.startswith("train/")
        }
        monitor = getattr(trainer.checkpoint_callback, "monitor", None)
        if monitor and monitor not in shown and monitor in trainer.callback_metrics:
            shown[monitor] = trainer.callback_metrics[monitor]
        self.print(self._line(trainer, "end of epoch", _metrics(shown), rate, self._eta(trainer, now)))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        elapsed = _duration(time.perf_counter() - self._start)
        self.print(f"training done  step {trainer.global_step}  {elapsed}")

    # --- parts of a line -------------------------------------------------------------------------

    @staticmethod
    def _line(trainer: pl.Trainer, *parts: str) -> str:
        epochs = trainer.max_epochs if trainer.max_epochs not in (None, -1) else "?"
        total = _total_steps(trainer)
        where = f"epoch {trainer.current_epoch + 1}/{epochs}  step {trainer.global_step}/{total or '?'}"
        return "  ".join([where, *(p for p in parts if p)])

    @staticmethod
    def _rate(trainer: pl.Trainer, samples: int, seconds: float) -> str:
        if samples <= 0 or seconds <= 0:
            return ""
        return f"{samples * trainer.world_size / seconds:.1f} samples/s"

    def _eta(self, trainer: pl.Trainer, now: float) -> str:
        total, done = _total_steps(trainer), trainer.global_step - self._start_step
        if total is None or done <= 0:
            return ""
        return "ETA " + _duration((now - self._start) / done * max(0, total - trainer.global_step))


def _total_steps(trainer: pl.Trainer) -> int | None:
    total = trainer.estimated_stepping_batches
    return int(total) if math.isfinite(float(total)) else None


def _batch_size(batch: Any) -> int:
    if not isinstance(batch, Tensor | list | tuple | dict):
        try:
            return len(batch)  # mmfuse's Batch: its number of samples
        except TypeError:
            return 0
    try:
        return extract_batch_size(batch)  # the first tensor's first dimension
    except MisconfigurationException:
        return 0


def _metrics(values: dict[str, Any]) -> str:
    return "  ".join(f"{k} {float(v):.4g}" for k, v in sorted(values.items()))


def _duration(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds)))


def choose_progress_bar(callbacks: Sequence[Any], enabled: bool, interactive: bool) -> list[Any]:
    """The trainer's callbacks with the progress bar that suits where the output goes.

    Args:
        callbacks: the configured callbacks.
        enabled: ``trainer.enable_progress_bar`` (False: every progress bar is removed).
        interactive: whether stdout is a terminal (``sys.stdout.isatty()``).

    Returns:
        With a terminal, ``callbacks`` as they are (Lightning adds its tqdm bar when there is none).
        Without one, a Rich or tqdm bar is replaced by :class:`PlainProgress`, which is also added
        when there is no bar; another progress bar chosen in the config is kept.
    """
    if not enabled:
        return [c for c in callbacks if not isinstance(c, ProgressBar)]
    if interactive:
        return list(callbacks)
    redrawn = (RichProgressBar, TQDMProgressBar)
    kept = [c for c in callbacks if not isinstance(c, redrawn)]
    if not any(isinstance(c, ProgressBar) for c in kept):
        kept.append(PlainProgress())
    return kept


def stdout_is_terminal() -> bool:
    """Whether stdout is a terminal (False when it is a file, a pipe or closed)."""
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False
