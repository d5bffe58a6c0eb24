"""Each schedule chosen in YAML or on the command line parses, runs and sets the expected rate."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
from torch.optim.lr_scheduler import ReduceLROnPlateau

from mmfuse.cli import MultimodalCLI
from mmfuse.lit.module import MultimodalModule
from mmfuse.lit.schedules import OneCycle, WarmupCosine
from tests.conftest import quickstart_args

ROOT = Path(__file__).resolve().parents[1]
LR = 0.002  # configs/quickstart.yaml

YAML = """
model:
  scheduler:
    class_path: WarmupCosine
    init_args: {warmup: 2, min_lr_ratio: 0.1}
"""


@pytest.mark.parametrize("how", ["yaml_warmup_cosine", "args_one_cycle", "args_plateau"])
def test_a_schedule_from_yaml_or_args_parses_and_runs(
    how: str, synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", ["mmfuse"])  # the arguments are `args`, not pytest's
    (tmp_path / "schedule.yaml").write_text(YAML)
    extra = {
        "yaml_warmup_cosine": ["--config", str(tmp_path / "schedule.yaml")],
        "args_one_cycle": ["--model.scheduler=OneCycle", "--model.scheduler.pct_start=0.5"],
        "args_plateau": [
            "--model.scheduler=torch.optim.lr_scheduler.ReduceLROnPlateau",
            "--model.scheduler.patience=0",
        ],
    }[how]
    args = [
        *quickstart_args(synthetic_root, tmp_path / "run"),
        *extra,
        "--trainer.max_epochs=2",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
    ]
    cli = MultimodalCLI(
        MultimodalModule,
        pl.LightningDataModule,
        subclass_mode_data=True,
        args=args,
        run=False,
        auto_configure_optimizers=False,
    )
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    [config] = cli.trainer.lr_scheduler_configs
    lr = cli.trainer.optimizers[0].param_groups[0]["lr"]
    if how == "yaml_warmup_cosine":
        assert isinstance(config.scheduler, WarmupCosine) and config.interval == "step"
        assert config.scheduler.total_steps == 8 and config.scheduler.warmup_steps == 2
        assert lr == pytest.approx(0.1 * LR)  # the floor after the last of 8 steps
    elif how == "args_one_cycle":
        assert isinstance(config.scheduler, OneCycle) and config.interval == "step"
        assert config.scheduler.total_steps == 8 and config.scheduler.last_epoch == 8  # stepped each step
        assert cli.trainer.optimizers[0].param_groups[0]["max_lr"] == LR  # the peak: the optimizer's lr
    else:
        assert isinstance(config.scheduler, ReduceLROnPlateau) and config.interval == "epoch"
        assert config.monitor == "val/acc" and config.scheduler.mode == "max"  # the checkpoint's
        assert lr in (LR, LR / 10, LR / 100)
