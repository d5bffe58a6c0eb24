"""configs/experiments/multitask.yaml end to end: fit, test, a checkpoint rebuilt from itself, predict."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from mmfuse.lit.module import MultimodalModule
from mmfuse.main import main
from tests.conftest import quickstart_args

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ("configs/experiments/multitask.yaml", "configs/logger/csv.yaml")
FAST = ["--trainer.limit_train_batches=2", "--trainer.enable_progress_bar=false"]
LABELS = ["zero", "one", "two", "three"]
CUES = ["cue_image", "cue_text", "cue_audio"]


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # configs name paths relative to the repository root


def test_multitask_fit_test_checkpoint_and_predict(synthetic_root: Path, tmp_path: Path) -> None:
    main(["fit", *quickstart_args(synthetic_root, tmp_path / "fit", *CONFIGS), *FAST])
    [metrics_file] = (tmp_path / "fit").glob("*/*/test_metrics.json")
    metrics = json.loads(metrics_file.read_text())
    keys = {k for k in metrics if k != "checkpoint"}
    assert keys == {
        "test/loss",
        *(f"test/label/{m}" for m in ("acc", "f1", "loss")),
        *(f"test/cues/{m}" for m in ("acc", "f1", "auroc", "loss")),
        *(f"test/tone_khz/{m}" for m in ("mae", "rmse", "r2", "loss")),
    }
    weighted = metrics["test/label/loss"] + 0.5 * metrics["test/cues/loss"] + metrics["test/tone_khz/loss"]
    assert metrics["test/loss"] == pytest.approx(weighted, rel=1e-5)  # the config's task_weights
    best = Path(metrics["checkpoint"])
    assert best.name.startswith("best-epoch")  # chosen by val/label/acc, which exists

    ckpt = torch.load(best, weights_only=True)  # plain hyper-parameters, no pickled objects
    assert ckpt["hyper_parameters"]["tasks"] == [
        {"name": "label", "kind": "multiclass", "names": LABELS},
        {"name": "cues", "kind": "multilabel", "names": CUES},
        {"name": "tone_khz", "kind": "regression", "names": []},
    ]
    assert ckpt["MultimodalDataModule"]["task_classes"] == {"label": LABELS, "cues": CUES}
    model = MultimodalModule.load_from_checkpoint(best)  # rebuilt from the checkpoint alone
    assert model.task_weights == {"label": 1.0, "cues": 0.5, "tone_khz": 1.0}
    for k, v in model.state_dict().items():
        assert torch.equal(v, ckpt["state_dict"][k]), k

    out = tmp_path / "pred.csv"
    main(
        [
            "predict",
            *quickstart_args(synthetic_root, tmp_path / "pred", *CONFIGS),
            f"--ckpt_path={best}",
            f"--predictions.output={out}",
        ]
    )
    with out.open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == [
        "id",
        "label/prediction",
        "label/label",
        "label/correct",
        *(f"label/prob_{c}" for c in LABELS),
        *(f"cues/prob_{c}" for c in CUES),
        *(f"cues/label_{c}" for c in CUES),
        "tone_khz/prediction",
        "tone_khz/label",
    ]
    with (synthetic_root / "manifest.csv").open() as f:
        truth = {r["id"]: r for r in csv.DictReader(f) if r["split"] == "test"}
    assert {r["id"] for r in rows} == set(truth)  # every test row, those without tone_khz included
    for r in rows:
        probs = {c: float(r[f"label/prob_{c}"]) for c in LABELS}
        assert sum(probs.values()) == pytest.approx(1, abs=1e-4)
        assert r["label/prediction"] == max(probs, key=probs.__getitem__)
        assert all(0 <= float(r[f"cues/prob_{c}"]) <= 1 for c in CUES)
        assert math.isfinite(float(r["tone_khz/prediction"]))
        # the true targets beside the predictions, empty where the manifest's cell is
        row = truth[r["id"]]
        assert r["label/label"] == row["label"]
        assert r["label/correct"] == str(int(r["label/prediction"] == row["label"]))
        assert [r[f"cues/label_{c}"] for c in CUES] == [row[c] for c in CUES]
        if row["tone_khz"] == "":
            assert r["tone_khz/label"] == ""
        else:
            assert float(r["tone_khz/label"]) == pytest.approx(float(row["tone_khz"]))
    assert any(r["tone_khz/label"] == "" for r in rows) and any(r["label/correct"] == "1" for r in rows)
