"""configs/experiments/contrastive{,_pretrain}.yaml end to end: the contrastive objective in the module."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from mmfuse.lit.module import MultimodalModule
from mmfuse.main import main
from tests.conftest import quickstart_args

ROOT = Path(__file__).resolve().parents[1]
FAST = [
    "--trainer.limit_train_batches=2",
    "--trainer.log_every_n_steps=1",
    "--trainer.enable_progress_bar=false",
]
PAIRS = [("audio", "image"), ("audio", "text"), ("image", "text")]
RECALL = {
    f"test/retrieval/{q}_to_{g}/recall@{k}" for a, b in PAIRS for q, g in ((a, b), (b, a)) for k in (1, 5, 10)
}


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # configs name paths relative to the repository root


def _run(synthetic_root: Path, run_dir: Path, config: str) -> tuple[dict[str, float], Path]:
    configs = (config, "configs/logger/csv.yaml")
    main(["fit", *quickstart_args(synthetic_root, run_dir, *configs), *FAST])
    [metrics_file] = run_dir.glob("*/*/test_metrics.json")
    return json.loads(metrics_file.read_text()), metrics_file.parent


def _logged_columns(run: Path) -> set[str]:
    with (run / "metrics.csv").open() as f:
        return set(next(csv.reader(f)))


def test_contrastive_as_auxiliary_objective(synthetic_root: Path, tmp_path: Path) -> None:
    metrics, run = _run(synthetic_root, tmp_path, "configs/experiments/contrastive.yaml")
    assert {"test/acc", "test/f1", "test/loss"} <= set(metrics)  # the task is still trained and tested
    assert set(metrics) >= RECALL
    assert all(0.0 <= metrics[k] <= 1.0 for k in RECALL)
    assert {"train/contrastive_loss", "train/temperature", "val/retrieval/image_to_text/recall@1"} <= (
        _logged_columns(run)
    )

    ckpt = torch.load(metrics["checkpoint"], weights_only=True)
    scale = ckpt["state_dict"]["contrastive.criterion.logit_scale"]
    assert float(scale) != pytest.approx(float(torch.log(torch.tensor(1 / 0.07))))  # the temperature learnt
    model = MultimodalModule.load_from_checkpoint(metrics["checkpoint"])
    assert model.contrastive is not None and model.contrastive.weight == 0.1
    assert torch.equal(model.contrastive.criterion.logit_scale.detach(), scale)


def test_contrastive_pretraining_without_labels(synthetic_root: Path, tmp_path: Path) -> None:
    metrics, run = _run(synthetic_root, tmp_path, "configs/experiments/contrastive_pretrain.yaml")
    assert set(metrics) == {"checkpoint", *RECALL}  # no task: no loss or accuracy keys
    assert Path(metrics["checkpoint"]).name.startswith("best-epoch")  # chosen by val recall@1
    model = MultimodalModule.load_from_checkpoint(metrics["checkpoint"])
    assert model.tasks == [] and len(model.model.heads) == 0
    assert "train/contrastive_loss" in _logged_columns(run)


def test_no_task_and_no_contrastive_is_a_clear_error(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unlabelled = "--data.init_args.source.init_args.tasks=[]"
    with pytest.raises(SystemExit) as info:  # a user error: one message, exit code 1
        main(["fit", *quickstart_args(synthetic_root, tmp_path, "configs/logger/csv.yaml"), unlabelled])
    assert info.value.code == 1 and "no task and no auxiliary objective" in capsys.readouterr().err
