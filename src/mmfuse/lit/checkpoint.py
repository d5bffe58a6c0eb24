"""RunCheckpoint: Lightning's ModelCheckpoint, with ``last.ckpt`` always the newest state of the run."""

from __future__ import annotations

import signal
import threading
import warnings
from types import FrameType
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException
from pytorch_lightning.utilities.rank_zero import rank_zero_info
from torch import Tensor


class RunCheckpoint(ModelCheckpoint):
    """The best checkpoints by the monitored metric, as ModelCheckpoint keeps them, plus a
    ``last.ckpt`` that is the newest state of the run (``save_last``):

    - after every validation (or every train epoch when there is no validation), whether or not a
      new best was saved (Lightning 2.6 rewrites ``last.ckpt`` only together with a new best);
    - at the end of ``fit``, early stopping and ``max_steps`` included;
    - on ``SIGTERM`` (a batch system stopping or preempting the job): the step in progress finishes,
      ``last.ckpt`` is written, then the process exits;
    - on ``SIGUSR1`` (the warning many batch systems send before the time limit): ``last.ckpt`` is
      written after the step in progress and training goes on. Lightning's own SLURM handler (auto
      requeue), where active, still runs as well.

    ``--ckpt_path last`` resumes from it without training an epoch twice. Every argument is
    ModelCheckpoint's (``--checkpoint.*``).
    """

    #: set by the CLI when a fit resumes from a checkpoint of its own folder (no "not empty" warning)
    resuming = False
    _newest_step = -1
    _usr1 = False
    _previous_usr1: Any = None

    def _save_last_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict[str, Tensor]) -> None:
        if self._newest_step == trainer.global_step and self.last_model_path:
            return  # last.ckpt holds this step already
        super()._save_last_checkpoint(trainer, monitor_candidates)
        self._newest_step = trainer.global_step

    def _save_newest(self, trainer: pl.Trainer) -> None:
        fitting = trainer.state.fn == TrainerFn.FITTING
        quick = bool(getattr(trainer, "fast_dev_run", False))  # Lightning saves nothing then
        if self.save_last and fitting and not trainer.sanity_checking and not quick:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_newest(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_newest(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._save_newest(trainer)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        super().on_exception(trainer, pl_module, exception)
        # Lightning raises SIGTERMException between two steps, so the state is whole; any other
        # exception may have stopped a step half-way, and a checkpoint of that is not a state to resume
        if isinstance(exception, SIGTERMException):
            self._save_newest(trainer)
            rank_zero_info(f"SIGTERM: saved the newest state to {self.last_model_path}")

    # --- SIGUSR1: save now, train on -------------------------------------------------------------

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        with warnings.catch_warnings():
            if self.resuming:  # a resumed run writes on into its own checkpoint folder
                warnings.filterwarnings("ignore", "Checkpoint directory .* exists and is not empty")
            super().setup(trainer, pl_module, stage)
        if stage == "fit" and self.save_last and threading.current_thread() is threading.main_thread():
            self._previous_usr1 = signal.signal(signal.SIGUSR1, self._on_usr1)

    def _on_usr1(self, signum: int, frame: FrameType | None) -> None:
        self._usr1 = True  # saved between two steps: a handler may run in the middle of one
        if callable(self._previous_usr1):
            self._previous_usr1(signum, frame)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self._usr1:
            self._usr1 = False
            self._save_newest(trainer)
            rank_zero_info(f"SIGUSR1: saved the newest state to {self.last_model_path}")

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().teardown(trainer, pl_module, stage)
        if self._previous_usr1 is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGUSR1, self._previous_usr1)
            self._previous_usr1 = None
