"""The daily loop: fit, stop, resume, test, predict, ablate, all in one run directory."""

from __future__ import annotations

import json
import os
import signal
import warnings
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from mmfuse.commands.ablate import main as ablate
from mmfuse.main import main
from tests.conftest import quickstart_args

ROOT = Path(__file__).resolve().parents[1]
CSV = "configs/logger/csv.yaml"
# 160 samples: 112 train rows, batch 32 -> 4 steps an epoch


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


class TermAt(pl.Callback):
    """Sends this process SIGTERM after the train step ``step``, as a batch system stopping the job."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def _runs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("*/*/checkpoints"))


def _facts(ckpt: Path) -> tuple[int, int]:
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    return int(state["epoch"]), int(state["global_step"])


def test_last_ckpt_is_the_last_epoch_even_when_the_best_is_earlier(
    synthetic_root: Path, tmp_path: Path
) -> None:
    # monitor the epoch, smallest best: the best checkpoint is epoch 0, the last trained is epoch 2
    args = quickstart_args(synthetic_root, tmp_path, CSV)
    main(["fit", *args, "--trainer.max_epochs=3", "--checkpoint.monitor=epoch", "--checkpoint.mode=min"])
    [run] = _runs(tmp_path)
    best = [p for p in (run / "checkpoints").iterdir() if p.name.startswith("best")]
    assert [_facts(p)[0] for p in best] == [0]
    assert _facts(run / "checkpoints" / "last.ckpt") == (2, 12)


@pytest.mark.parametrize("logger", ["wandb", "csv"])
def test_sigterm_saves_last_and_resume_continues_the_same_run(
    synthetic_root: Path, tmp_path: Path, logger: str
) -> None:
    configs = [CSV] if logger == "csv" else []
    args = [*quickstart_args(synthetic_root, tmp_path, *configs), "--trainer.max_epochs=3"]
    stop = '{"class_path": "tests.test_research_loop.TermAt", "init_args": {"step": 6}}'
    with pytest.raises(SystemExit) as stopped:  # Lightning ends the fit after the step in progress
        main(["fit", *args, f"--trainer.callbacks+={stop}"])
    assert stopped.value.code == 143  # 128 + SIGTERM: not a success for `fit && test`
    [run] = _runs(tmp_path)
    assert _facts(run / "checkpoints" / "last.ckpt") == (1, 6)  # mid-epoch 1, not epoch 0's end
    assert not (run / "test_metrics.json").exists()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        main(["fit", *args, "--ckpt_path", "last"])
    assert not [w for w in caught if "exists and is not empty" in str(w.message)]  # its own folder: no alarm
    assert _runs(tmp_path) == [run]  # the same run directory, no second one
    assert _facts(run / "checkpoints" / "last.ckpt") == (2, 12)
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert Path(metrics["checkpoint"]).parent == run / "checkpoints"
    if logger == "csv":
        lines = (run / "metrics.csv").read_text().splitlines()
        header = lines[0].split(",")
        epochs = {row.split(",")[header.index("epoch")] for row in lines[1:]}
        assert {"0", "1", "2"} <= epochs  # the epochs before the stop are kept
    else:
        assert json.loads((run / "wandb_run.json").read_text())["id"] == run.name


def test_evaluations_land_under_their_training_run(synthetic_root: Path, tmp_path: Path) -> None:
    args = quickstart_args(synthetic_root, tmp_path)
    main(["fit", *args])
    [run] = _runs(tmp_path)
    train = json.loads((run / "wandb_run.json").read_text())
    assert train["group"] == train["id"] and train["job_type"] == "train"

    main(["test", *args, "--ckpt_path", "last"])
    main(["predict", *args, "--ckpt_path", "last"])
    assert ablate([*args, "--ckpt_path", "last"]) == 0
    assert _runs(tmp_path) == [run]  # no new run folders
    folders = {p.name.rsplit("-", 1)[-1]: p for p in (run / "eval").iterdir()}
    assert sorted(folders) == ["ablate", "predict", "test"]
    assert (folders["test"] / "test_metrics.json").is_file()
    assert (folders["predict"] / "predictions.csv").is_file()
    assert (folders["ablate"] / "ablation.json").is_file()
    for command, folder in folders.items():
        evaluation = json.loads((folder / "wandb_run.json").read_text())
        assert evaluation["group"] == train["group"] and evaluation["job_type"] == command
        assert (folder / "config.yaml").is_file()


def test_a_failed_start_leaves_nothing_behind(synthetic_root: Path, tmp_path: Path) -> None:
    args = quickstart_args(synthetic_root, tmp_path)
    main(["fit", *args])
    [run] = _runs(tmp_path)
    wandb_runs = set(Path(os.environ["WANDB_DIR"]).glob("**/offline-run-*"))
    with pytest.raises(SystemExit) as info:  # a user error: one message, exit code 1
        main(
            [
                "test",
                *args,
                "--ckpt_path",
                "last",
                "--data.init_args.modalities.text.init_args.column=no_such_column",
            ]
        )
    assert info.value.code == 1
    assert not (run / "eval").exists()
    assert set(Path(os.environ["WANDB_DIR"]).glob("**/offline-run-*")) == wandb_runs
