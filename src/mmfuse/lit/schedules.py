"""Learning-rate schedules whose length is the run's, and the Lightning config for any scheduler.

``WarmupCosine`` and ``OneCycle`` are stepped every optimizer step and learn the run's number of
steps from the trainer (``trainer.estimated_stepping_batches``), so a config says how long the
warm-up is (a fraction or a step count), never how long the run is. Each scales every optimizer
group's own learning rate, so the pretrained backbones' group (``model.pretrained_lr``,
:func:`~mmfuse.lit.optim.param_groups`) follows the same shape at its own height.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_info
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, OneCycleLR, ReduceLROnPlateau

Interval = Literal["step", "epoch"]


class RunLengthSchedule:
    """A schedule that needs the run's length before it can set a learning rate.

    :func:`lr_scheduler_config` calls :meth:`set_total_steps` with the number of steps (or of
    epochs, with ``interval: epoch``) once the trainer knows it; used alone, pass ``total_steps``.
    """

    #: Lightning's default interval for the schedule
    interval: Interval = "step"

    def set_total_steps(self, total_steps: int) -> None:
        """Fix the schedule's length and set the learning rate of the current step."""
        raise NotImplementedError

    def _check_bound(self) -> None:
        if getattr(self, "total_steps", None) is None:
            raise RuntimeError(
                f"{type(self).__name__}: the run's length is unknown: pass total_steps, or call "
                "set_total_steps(trainer.estimated_stepping_batches) first (MultimodalModule does)"
            )


class WarmupCosine(RunLengthSchedule, LRScheduler):
    """Linear warm-up from 0 to each group's learning rate, then cosine decay to a floor.

    At step ``s`` of ``T`` with ``W`` warm-up steps, each group's learning rate is its initial
    ``lr`` (the peak) times ``s / W`` while ``s <= W``, then
    ``r + (1 - r) * (1 + cos(pi * (s - W) / (T - W))) / 2`` with ``r = min_lr_ratio``: the peak at
    step ``W``, the floor ``r * lr`` at step ``T`` (after the last optimizer step) and after it.

    Args:
        optimizer: the optimizer (its groups' ``lr`` are the peaks).
        warmup: the warm-up: an int is a number of steps; a float in [0, 1] a fraction of the run's
            steps (0: no warm-up, decay from the first step).
        min_lr_ratio: the floor, as a fraction of each group's peak, in [0, 1].
        total_steps: the run's number of steps; None: set by the trainer
            (``trainer.estimated_stepping_batches``, see :func:`lr_scheduler_config`).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        warmup: int | float = 0.05,
        min_lr_ratio: float = 0.0,
        total_steps: int | None = None,
    ) -> None:
        if isinstance(warmup, bool) or not isinstance(warmup, int | float):
            raise TypeError(
                f"WarmupCosine: warmup must be an int (steps) or a float (fraction), got {warmup!r}"
            )
        if isinstance(warmup, int) and warmup < 0:
            raise ValueError(f"WarmupCosine: warmup must be >= 0 steps, got {warmup}")
        if isinstance(warmup, float) and not 0.0 <= warmup <= 1.0:
            raise ValueError(
                f"WarmupCosine: a float warmup is a fraction of the run in [0, 1], got {warmup} "
                "(give a number of steps as an int)"
            )
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ValueError(f"WarmupCosine: min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
        self.warmup = warmup
        self.min_lr_ratio = min_lr_ratio
        self.total_steps: int | None = None
        self.warmup_steps = 0
        self._optimizer = optimizer
        if total_steps is not None:
            self.set_total_steps(total_steps)

    def set_total_steps(self, total_steps: int) -> None:
        if total_steps < 1:
            raise ValueError(f"WarmupCosine: total_steps must be >= 1, got {total_steps}")
        warmup = self.warmup
        steps = warmup if isinstance(warmup, int) else round(warmup * total_steps)
        if steps > total_steps:
            raise ValueError(
                f"WarmupCosine: a warm-up of {steps} steps is longer than the run ({total_steps} steps)"
            )
        first = self.total_steps is None
        self.total_steps, self.warmup_steps = total_steps, steps
        if first:  # the peaks are read from the optimizer now, and step 0's rate is set
            super().__init__(self._optimizer)
        else:
            for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
                group["lr"] = lr
            self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def factor(self, step: int) -> float:
        """The multiplier of the peak learning rate at ``step``."""
        self._check_bound()
        total, warm = int(self.total_steps or 0), self.warmup_steps
        if step < warm:
            return step / warm
        progress = min(1.0, (step - warm) / max(1, total - warm))
        r = self.min_lr_ratio
        return r + (1.0 - r) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def get_lr(self) -> list[float]:  # type: ignore[override]
        scale = self.factor(self.last_epoch)
        return [float(base) * scale for base in self.base_lrs]

    def step(self, epoch: int | None = None) -> None:
        self._check_bound()
        super().step(epoch)

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().state_dict().items() if k != "_optimizer"}


class OneCycle(RunLengthSchedule, OneCycleLR):
    """PyTorch's :class:`~torch.optim.lr_scheduler.OneCycleLR`, its peak each group's ``lr`` and its
    length the run's.

    The learning rate rises from ``lr / div_factor`` to ``lr`` over the first ``pct_start`` of the
    steps, then anneals to ``lr / (div_factor * final_div_factor)`` at the last step; with
    ``cycle_momentum`` the momentum (Adam's beta1) moves the opposite way between
    ``max_momentum`` and ``base_momentum``.

    Args:
        optimizer: the optimizer (its groups' ``lr`` are the peaks).
        pct_start: the fraction of the run spent rising.
        anneal_strategy: ``cos`` or ``linear``.
        cycle_momentum: cycle the momentum (or Adam's beta1) inversely to the learning rate.
        base_momentum: the lower momentum.
        max_momentum: the upper momentum.
        div_factor: the starting learning rate is ``lr / div_factor``.
        final_div_factor: the last learning rate is the starting one divided by this.
        three_phase: a third phase that returns to the starting rate before the final decay.
        total_steps: the run's number of steps; None: set by the trainer (see :func:`lr_scheduler_config`).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        pct_start: float = 0.3,
        anneal_strategy: Literal["cos", "linear"] = "cos",
        cycle_momentum: bool = True,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        total_steps: int | None = None,
    ) -> None:
        self._optimizer = optimizer
        self._peaks = [float(group["lr"]) for group in optimizer.param_groups]
        self._options: dict[str, Any] = {
            "pct_start": float(pct_start),
            "anneal_strategy": anneal_strategy,
            "cycle_momentum": cycle_momentum,
            "base_momentum": base_momentum,
            "max_momentum": max_momentum,
            "div_factor": div_factor,
            "final_div_factor": final_div_factor,
            "three_phase": three_phase,
        }
        # no total_steps attribute until the length is known (OneCycleLR's constructor sets it)
        if total_steps is not None:
            self.set_total_steps(total_steps)

    def set_total_steps(self, total_steps: int) -> None:
        # OneCycleLR fixes its phases in its constructor: run it now that the length is known
        OneCycleLR.__init__(
            self, self._optimizer, max_lr=self._peaks, total_steps=int(total_steps), **self._options
        )

    def step(self, epoch: int | None = None) -> None:
        self._check_bound()
        super().step(epoch)

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().state_dict().items() if k != "_optimizer"}


def lr_scheduler_config(
    scheduler: Any,
    trainer: pl.Trainer,
    interval: Interval | None = None,
    monitor: str | None = None,
) -> dict[str, Any]:
    """Lightning's ``lr_scheduler`` dict for ``scheduler``, completed from the trainer.

    - ``interval``: the given one, else ``step`` for a :class:`RunLengthSchedule`, ``epoch`` for others.
    - A :class:`RunLengthSchedule` gets the run's length: ``trainer.estimated_stepping_batches``
      (optimizer steps) with ``interval: step``, ``trainer.max_epochs`` with ``interval: epoch``.
    - A ``ReduceLROnPlateau`` follows ``monitor`` if given (in the scheduler's own ``mode``), else its
      own ``monitor`` attribute (``pytorch_lightning.cli.ReduceLROnPlateau``), else the checkpoint's
      monitor *and mode* (``val/acc``, ``max`` by default), so that a higher accuracy counts as better.

    Raises:
        ValueError: the run's length is unknown, or a plateau scheduler has no metric to follow.
    """
    name = type(scheduler).__name__
    chosen: Interval = interval or ("step" if isinstance(scheduler, RunLengthSchedule) else "epoch")
    config: dict[str, Any] = {"scheduler": scheduler, "interval": chosen}
    if isinstance(scheduler, RunLengthSchedule):
        total = trainer.estimated_stepping_batches if chosen == "step" else trainer.max_epochs
        if total is None or not math.isfinite(float(total)) or total < 1:
            raise ValueError(
                f"model.scheduler {name} needs the run's length, but the number of training "
                f"{chosen}s is unknown ({total}): set trainer.max_epochs or trainer.max_steps"
            )
        scheduler.set_total_steps(int(total))
    if isinstance(scheduler, ReduceLROnPlateau):
        config["monitor"] = _plateau_monitor(scheduler, trainer, monitor)
    return config


def _plateau_monitor(scheduler: ReduceLROnPlateau, trainer: pl.Trainer, monitor: str | None) -> str:
    own = getattr(scheduler, "monitor", None)
    if monitor or own:
        return str(monitor or own)
    checkpoint = trainer.checkpoint_callback
    followed = getattr(checkpoint, "monitor", None)
    if not followed:
        raise ValueError(
            f"model.scheduler {type(scheduler).__name__} needs a metric to follow: set "
            "model.scheduler_monitor (e.g. val/loss, with the scheduler's mode: min) or checkpoint.monitor"
        )
    mode = str(getattr(checkpoint, "mode", "min"))
    if scheduler.mode != mode:
        # the monitor and its direction go together: follow the checkpoint's (its load_state_dict
        # re-derives the comparison from `mode`; `best` restarts at the worst value of that mode)
        scheduler.load_state_dict(
            {**scheduler.state_dict(), "mode": mode, "best": -math.inf if mode == "max" else math.inf}
        )
    rank_zero_info(f"{type(scheduler).__name__} follows {followed} (mode {mode}), the checkpoint's monitor")
    return str(followed)
