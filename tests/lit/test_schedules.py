"""Learning-rate schedules, tested by the rate the optimizer has at given steps of a real fit."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.optim.lr_scheduler import OneCycleLR, ReduceLROnPlateau

from mmfuse.lit.schedules import OneCycle, WarmupCosine, lr_scheduler_config
from tests.lit.test_module import _data, _module
from tests.lit.tiny_pretrained import TinyTextModule, loader, save_tiny_bert

PEAK = 0.1
STEPS_PER_EPOCH = 4  # 112 train samples of the session's synthetic data, batches of 32


class LRs(pl.Callback):
    """The learning rates (one per optimizer group) each optimizer step used, by global step,
    the rates after the last step, and Adam's beta1 likewise."""

    def __init__(self) -> None:
        self.by_step: dict[int, list[float]] = {}
        self.beta1: dict[int, float] = {}
        self.final: list[float] = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        groups = trainer.optimizers[0].param_groups
        self.by_step[trainer.global_step] = [float(g["lr"]) for g in groups]
        self.beta1[trainer.global_step] = float(groups[0]["betas"][0])

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.final = [float(g["lr"]) for g in trainer.optimizers[0].param_groups]


def _fit(module: pl.LightningModule, tmp_path: Path, data: Any, epochs: int, *callbacks: pl.Callback) -> LRs:
    lrs = LRs()
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        accelerator="cpu",
        max_epochs=epochs,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        num_sanity_val_steps=0,
        callbacks=[lrs, *callbacks],
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
    )
    if isinstance(data, pl.LightningDataModule):
        trainer.fit(module, datamodule=data)
    else:
        trainer.fit(module, train_dataloaders=data)
    return lrs


def adamw(params: Any) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=PEAK)


def warmup_cosine(step: int, warm: int, total: int, floor: float) -> float:
    """The expected multiplier, written out independently of the class."""
    if step < warm:
        return step / warm
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / (total - warm))))


def test_warmup_rises_linearly_to_the_peak_then_follows_the_cosine_to_the_floor(
    synthetic_root: Path, tmp_path: Path
) -> None:
    module = _module(optimizer=adamw, scheduler=lambda opt: WarmupCosine(opt, warmup=0.25, min_lr_ratio=0.1))
    lrs = _fit(module, tmp_path, _data(synthetic_root), 3)
    total = 3 * STEPS_PER_EPOCH  # the run's length, from the trainer: the config never says it
    assert sorted(lrs.by_step) == list(range(total))
    assert [lrs.by_step[s][0] for s in range(4)] == pytest.approx(
        [0.0, PEAK / 3, 2 * PEAK / 3, PEAK]
    )  # 25%: 3
    for step, (lr,) in lrs.by_step.items():
        assert lr == pytest.approx(PEAK * warmup_cosine(step, 3, total, 0.1)), step
    assert max(lr for (lr,) in lrs.by_step.values()) == pytest.approx(PEAK)
    assert lrs.final == pytest.approx([0.1 * PEAK])  # the floor, after the last step


def test_epoch_interval_steps_once_per_epoch_over_the_epochs(synthetic_root: Path, tmp_path: Path) -> None:
    module = _module(
        optimizer=adamw,
        scheduler=lambda opt: WarmupCosine(opt, warmup=1, min_lr_ratio=0.0),
        scheduler_interval="epoch",
    )
    lrs = _fit(module, tmp_path, _data(synthetic_root), 3)
    per_epoch = [lrs.by_step[e * STEPS_PER_EPOCH][0] for e in range(3)]
    assert per_epoch == pytest.approx([0.0, PEAK, PEAK * 0.5])  # 3 epochs: warm 1, cosine over 2
    for step, (lr,) in lrs.by_step.items():  # constant within an epoch
        assert lr == pytest.approx(per_epoch[step // STEPS_PER_EPOCH])
    assert lrs.final == pytest.approx([0.0])


def test_one_cycle_is_torchs_over_the_run_with_the_optimizers_lr_as_peak(
    synthetic_root: Path, tmp_path: Path
) -> None:
    module = _module(optimizer=adamw, scheduler=lambda opt: OneCycle(opt, pct_start=0.25))
    lrs = _fit(module, tmp_path, _data(synthetic_root), 2)
    total = 2 * STEPS_PER_EPOCH
    reference = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=PEAK)
    expected = OneCycleLR(reference, max_lr=PEAK, total_steps=total, pct_start=0.25)
    for step in range(total):
        assert lrs.by_step[step] == pytest.approx([reference.param_groups[0]["lr"]]), step
        assert lrs.beta1[step] == pytest.approx(reference.param_groups[0]["betas"][0]), (
            step
        )  # momentum cycles
        reference.step()
        expected.step()
    assert lrs.by_step[0][0] == pytest.approx(PEAK / 25)
    assert lrs.by_step[1][0] == pytest.approx(PEAK)  # the peak at pct_start of the run
    assert lrs.by_step[total - 1][0] == pytest.approx(PEAK / 25 / 1e4)  # the last step at the minimum


class PretrainedGroups(TinyTextModule):
    """The tiny HF text module, its optimizer split by param_groups, with a schedule."""

    def __init__(self, path: str, schedule: str) -> None:
        super().__init__(path, freeze=False, lr=PEAK, pretrained_lr=PEAK / 10)
        self.schedule = schedule

    def configure_optimizers(self) -> Any:
        optimizer = super().configure_optimizers()
        if self.schedule == "warmup_cosine":
            scheduler: Any = WarmupCosine(optimizer, warmup=2)
        elif self.schedule == "one_cycle":
            scheduler = OneCycle(optimizer)
        else:
            scheduler = ReduceLROnPlateau(optimizer, mode="min", patience=0, factor=0.5)
        return {
            "optimizer": optimizer,
            "lr_scheduler": lr_scheduler_config(scheduler, self.trainer, "step", "lossy"),
        }

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        self.log("lossy", float(self.global_step), on_step=True)  # rises: a plateau at every step
        return loss


@pytest.mark.parametrize("schedule", ["warmup_cosine", "one_cycle", "plateau"])
def test_every_schedule_keeps_the_pretrained_groups_rate_in_proportion(
    schedule: str, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    module = PretrainedGroups(save_tiny_bert(tmp_path_factory.mktemp("bert") / "bert"), schedule)
    lrs = _fit(module, tmp_path, loader(n=32, batch_size=4), 1)  # 8 steps
    rates = [*lrs.by_step.values(), lrs.final]
    assert len({round(other, 12) for _, other in rates}) > 2  # the schedule moved the rate
    for pretrained, other in rates:
        assert pretrained == pytest.approx(other / 10, abs=1e-12)


class LogScore(pl.Callback):
    """Logs ``val/score`` = the given values, one per validation epoch."""

    def __init__(self, values: list[float]) -> None:
        self.values = values

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pl_module.log("val/score", self.values[trainer.current_epoch])


def test_plateau_follows_the_checkpoint_monitor_and_its_mode(synthetic_root: Path, tmp_path: Path) -> None:
    module = _module(optimizer=adamw, scheduler=lambda opt: ReduceLROnPlateau(opt, factor=0.5, patience=1))
    # mode max: better, better, same (1 bad epoch: within patience), same (2 bad: halve; the count
    # restarts), same (1 bad), worse (2 bad: halve). In mode min (PyTorch's default) the rising score
    # of epoch 1 would count as bad and halve the rate after epoch 2 already.
    scores = [1.0, 2.0, 2.0, 2.0, 2.0, 1.0]
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/score", mode="max")
    lrs = _fit(module, tmp_path, _data(synthetic_root), len(scores), LogScore(scores), checkpoint)
    per_epoch = [lrs.by_step[e * STEPS_PER_EPOCH][0] for e in range(len(scores))]
    assert per_epoch == pytest.approx([PEAK, PEAK, PEAK, PEAK, PEAK / 2, PEAK / 2])
    assert lrs.final == pytest.approx([PEAK / 4])


def _optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=PEAK)


def test_plateau_monitor_choice_and_errors() -> None:
    optimizer = _optimizer()
    plateau = ReduceLROnPlateau(optimizer, mode="min", patience=0)
    no_checkpoint: Any = SimpleNamespace(checkpoint_callback=None)
    with pytest.raises(
        ValueError, match=r"ReduceLROnPlateau needs a metric to follow: set model.scheduler_monitor"
    ):
        lr_scheduler_config(plateau, no_checkpoint)
    checkpoint: Any = SimpleNamespace(checkpoint_callback=SimpleNamespace(monitor="val/acc", mode="max"))
    config = lr_scheduler_config(plateau, checkpoint, monitor="val/loss")  # its own mode
    assert config == {"scheduler": plateau, "interval": "epoch", "monitor": "val/loss"}
    assert plateau.mode == "min"
    assert lr_scheduler_config(plateau, checkpoint)["monitor"] == "val/acc" and plateau.mode == "max"
    for score in (0.5, 0.6):  # rising: better in mode max, so no reduction
        plateau.step(score)
    assert optimizer.param_groups[0]["lr"] == PEAK
    plateau.step(0.6)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(PEAK / 10)
    from pytorch_lightning.cli import ReduceLROnPlateau as WithMonitor

    own = WithMonitor(_optimizer(), monitor="train/loss")
    assert lr_scheduler_config(own, checkpoint)["monitor"] == "train/loss" and own.mode == "min"


def test_run_length_errors() -> None:
    unknown: Any = SimpleNamespace(estimated_stepping_batches=float("inf"), max_epochs=-1)
    with pytest.raises(ValueError, match=r"WarmupCosine needs the run's length.*trainer.max_epochs"):
        lr_scheduler_config(WarmupCosine(_optimizer()), unknown)
    with pytest.raises(ValueError, match=r"a warm-up of 20 steps is longer than the run \(10 steps\)"):
        WarmupCosine(_optimizer(), warmup=20, total_steps=10)
    with pytest.raises(ValueError, match=r"a float warmup is a fraction of the run in \[0, 1\], got 5.0"):
        WarmupCosine(_optimizer(), warmup=5.0)
    with pytest.raises(RuntimeError, match=r"OneCycle: the run's length is unknown"):
        OneCycle(_optimizer(), cycle_momentum=False).step()
