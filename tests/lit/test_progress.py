"""Plain progress lines when stdout is a file, the Rich bar with a terminal."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
from pytorch_lightning.callbacks import RichProgressBar, TQDMProgressBar

from mmfuse.lit.progress import PlainProgress, choose_progress_bar
from tests.conftest import quickstart_args

ROOT = Path(__file__).resolve().parents[2]


def test_the_bar_suits_where_stdout_goes() -> None:
    rich, other = RichProgressBar(), pl.Callback()
    assert choose_progress_bar([rich, other], enabled=True, interactive=True) == [rich, other]
    assert choose_progress_bar([other], enabled=True, interactive=True) == [other]  # Lightning's tqdm
    for bar in (rich, TQDMProgressBar()):
        chosen = choose_progress_bar([bar, other], enabled=True, interactive=False)
        assert chosen[0] is other and isinstance(chosen[1], PlainProgress) and len(chosen) == 2
    [plain] = choose_progress_bar([], enabled=True, interactive=False)  # none configured: still lines
    assert isinstance(plain, PlainProgress)
    own = PlainProgress(every_n_steps=3)
    assert choose_progress_bar([own], enabled=True, interactive=False) == [own]
    assert choose_progress_bar([rich, own, other], enabled=False, interactive=False) == [other]
    with pytest.raises(ValueError, match="every_n_steps must be >= 1"):
        PlainProgress(every_n_steps=0)


class ReadOutput(pl.Callback):
    """Reads the output file when the second epoch starts: what a user watching the log sees mid-run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen = ""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == 1:
            self.seen = self.path.read_text()


def test_a_fit_with_stdout_to_a_file_prints_lines_as_it_goes(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmfuse.cli import MultimodalCLI
    from mmfuse.lit.module import MultimodalModule

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", ["mmfuse"])  # the arguments are `args`, not pytest's
    out = tmp_path / "stdout.txt"
    args = [
        *quickstart_args(synthetic_root, tmp_path / "run"),  # its config adds a RichProgressBar
        "--trainer.max_epochs=2",
        "--trainer.log_every_n_steps=2",
        "--trainer.logger=false",
    ]
    with out.open("w") as stream:
        monkeypatch.setattr(sys, "stdout", stream)
        cli = MultimodalCLI(
            MultimodalModule,
            pl.LightningDataModule,
            subclass_mode_data=True,
            args=args,
            run=False,
            auto_configure_optimizers=False,
        )
        assert isinstance(cli.trainer.progress_bar_callback, PlainProgress)
        probe = ReadOutput(out)
        cli.trainer.callbacks.append(probe)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    # before the end of training: the first epoch's lines, flushed, with the epoch's validation
    steps = re.findall(
        r"^epoch 1/2  step (\d+)/8  train/loss [\d.]+  [\d.]+ samples/s  ETA \d+:\d\d:\d\d$", probe.seen, re.M
    )
    assert steps == ["2", "4"]
    assert re.search(
        r"^epoch 1/2  step 4/8  end of epoch  val/acc [\d.]+  val/f1 [\d.]+  val/loss [\d.]+  ",
        probe.seen,
        re.M,
    )
    assert "it/s" not in probe.seen  # no Rich bar (it shows "4/4 0:00:01 • 0:00:00 11.53it/s")
    text = out.read_text()
    assert re.findall(r"^epoch 2/2  step (\d+)/8  train", text, re.M) == ["6", "8"]
    assert re.search(r"^epoch 2/2  step 8/8  end of epoch  val/acc .* ETA 0:00:00$", text, re.M)
    assert re.search(r"^training done  step 8  \d+:\d\d:\d\d$", text, re.M)


def test_lines_come_every_n_steps_and_once_per_accumulated_step(tmp_path: Path, capsys: Any) -> None:
    from tests.lit.tiny_pretrained import TinyTextModule, loader, save_tiny_bert

    module = TinyTextModule(save_tiny_bert(tmp_path / "bert"))
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        accumulate_grad_batches=2,
        callbacks=[PlainProgress(every_n_steps=1)],
    )
    trainer.fit(module, train_dataloaders=loader(n=16, batch_size=4))  # 4 batches, 2 optimizer steps
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[1] for line in lines if line.startswith("epoch")] == [
        "step 1/2",
        "step 2/2",
        "step 2/2",
    ]
    assert "end of epoch" in lines[-2] and lines[-1].startswith("training done  step 2")
