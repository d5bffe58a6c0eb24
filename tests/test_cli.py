"""The mmfuse command: configs parse, fit/test/predict end to end, checkpoints load."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from mmfuse.cli import MultimodalCLI
from mmfuse.lit.module import MultimodalModule
from mmfuse.main import main
from tests.conftest import quickstart_args

ROOT = Path(__file__).resolve().parents[1]
STACKS = [
    ["configs/quickstart.yaml"],
    *[
        ["configs/quickstart.yaml", str(p.relative_to(ROOT))]
        for p in sorted((ROOT / "configs").glob("*/*.yaml"))
        if p.parent.name != "sweeps"  # W&B sweep definitions, not CLI configs: tests/test_sweeps.py
    ],
    ["configs/manifest_example.yaml"],
]


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # configs name paths relative to the repository root


def _cli(args: list[str], run: bool = True) -> MultimodalCLI:
    import pytorch_lightning as pl

    return MultimodalCLI(
        MultimodalModule,
        pl.LightningDataModule,
        subclass_mode_data=True,
        args=args,
        run=run,
        auto_configure_optimizers=False,
    )


@pytest.mark.parametrize("stack", STACKS, ids=lambda s: "+".join(Path(p).stem for p in s))
def test_every_config_parses(stack: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    args = [a for p in stack for a in ("--config", p)]
    with pytest.raises(SystemExit) as info:
        main(["fit", *args, "--print_config"])
    assert info.value.code == 0
    printed = capsys.readouterr().out
    assert "encoders:" in printed and "modalities:" in printed


def _fit(synthetic_root: Path, run_dir: Path, *configs: str) -> Path:
    main(["fit", *quickstart_args(synthetic_root, run_dir, *configs)])
    # the run directory: <root>/<project>/<run id> under W&B, <root>/lightning_logs/version_N under CSV
    [metrics_file] = run_dir.glob("*/*/test_metrics.json")
    return metrics_file


@pytest.mark.parametrize(
    "configs",
    [
        ("configs/fusion/cross_attention.yaml",),
        ("configs/fusion/concat.yaml",),
        ("configs/fusion/late.yaml", "configs/logger/csv.yaml"),
        ("configs/baselines/text_only.yaml",),
    ],
    ids=["cross_attention", "concat", "late", "text_only"],
)
def test_fit_then_test_writes_metrics(
    synthetic_root: Path, tmp_path: Path, configs: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    metrics_file = _fit(synthetic_root, tmp_path, *configs)
    metrics = json.loads(metrics_file.read_text())
    assert {"test/acc", "test/f1", "test/loss"} <= set(metrics)
    assert 0.0 <= metrics["test/acc"] <= 1.0
    assert Path(metrics["checkpoint"]).name.startswith("best-epoch")
    out = capsys.readouterr().out.strip().splitlines()
    assert "run directory" in out[-1] and str(metrics_file.parent) in " ".join(out[-2:])
    if "configs/logger/csv.yaml" in configs:  # W&B is one --config away from CSV
        assert (metrics_file.parent / "metrics.csv").is_file() and not (tmp_path / "wandb").exists()


def test_checkpoint_round_trip_predict_and_test(synthetic_root: Path, tmp_path: Path) -> None:
    metrics_file = _fit(synthetic_root, tmp_path / "fit")
    run_dir = metrics_file.parent
    best = Path(json.loads(metrics_file.read_text())["checkpoint"])
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()

    # no pickled modules: loads under torch's safe loader
    ckpt = torch.load(best, weights_only=True)
    labels = ["zero", "one", "two", "three"]
    assert ckpt["hyper_parameters"]["tasks"] == [{"name": "label", "kind": "multiclass", "names": labels}]

    # rebuilt from the checkpoint alone, same outputs
    model = MultimodalModule.load_from_checkpoint(best)
    assert model.class_names == ["zero", "one", "two", "three"]
    state = {k: v for k, v in ckpt["state_dict"].items()}
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k

    # predict writes one row per test sample with class names and probabilities
    out_csv = tmp_path / "pred.csv"
    main(
        [
            "predict",
            *quickstart_args(synthetic_root, tmp_path / "pred"),
            "--ckpt_path",
            str(best),
            "--predictions.output",
            str(out_csv),
        ]
    )
    with out_csv.open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == ["id", "prediction", "label", "correct", *(f"prob_{c}" for c in labels)]
    with (synthetic_root / "manifest.csv").open() as f:
        truth = {r["id"]: r["label"] for r in csv.DictReader(f) if r["split"] == "test"}
    assert {r["id"] for r in rows} == set(truth) and len(rows) == len(truth)
    for r in rows:
        probs = {c: float(r[f"prob_{c}"]) for c in model.class_names}
        assert abs(sum(probs.values()) - 1) < 1e-4
        assert r["prediction"] == max(probs, key=probs.__getitem__)
        # the true label beside the prediction, and whether they agree
        assert r["label"] == truth[r["id"]]
        assert r["correct"] == str(int(r["prediction"] == r["label"]))
    assert {r["correct"] for r in rows} == {"0", "1"}  # both cases occur: the check is not vacuous

    # test on the checkpoint reproduces the metrics written after fit
    main(["test", *quickstart_args(synthetic_root, tmp_path / "test"), "--ckpt_path", str(best)])
    # the evaluation of a run's checkpoint lands in that run: <run>/eval/<time>-test/
    [again] = run_dir.glob("eval/*-test/test_metrics.json")
    assert not (tmp_path / "test").exists()
    assert json.loads(again.read_text())["test/acc"] == pytest.approx(
        json.loads(metrics_file.read_text())["test/acc"]
    )
