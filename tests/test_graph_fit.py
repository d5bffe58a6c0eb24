"""configs/experiments/graph.yaml end to end: fit, test, and a checkpoint that loads safely."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("torch_geometric")

from mmfuse.data.sources.synthetic_graph import generate_graph_dataset
from mmfuse.lit.module import MultimodalModule
from mmfuse.main import main
from tests.conftest import quickstart_args

ROOT = Path(__file__).resolve().parents[1]
GRAPH = "configs/experiments/graph.yaml"
CSV = "configs/logger/csv.yaml"  # the graph pipeline is under test here, not the logger: no W&B


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # configs name paths relative to the repository root


@pytest.fixture(scope="module")
def graph_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic_graph")
    generate_graph_dataset(root, num_samples=160, seed=0, image_size=24)
    return root


def _fit(root: Path, run_dir: Path, *configs: str) -> dict[str, float | str]:
    main(["fit", *quickstart_args(root, run_dir, *configs)])
    # the run directory: <root>/<project>/<run id> under W&B, <root>/lightning_logs/version_N under CSV
    [metrics_file] = run_dir.glob("*/*/test_metrics.json")
    metrics: dict[str, float | str] = json.loads(metrics_file.read_text())
    return metrics


def test_fit_image_text_graph_then_reload(graph_root: Path, tmp_path: Path) -> None:
    metrics = _fit(graph_root, tmp_path, GRAPH, CSV)
    assert {"test/acc", "test/loss"} <= set(metrics) and 0.0 <= float(metrics["test/acc"]) <= 1.0
    best = Path(str(metrics["checkpoint"]))
    ckpt = torch.load(best, weights_only=True)  # no pickled modules
    assert any(k.startswith("model.encoders.graph.") for k in ckpt["state_dict"])
    model = MultimodalModule.load_from_checkpoint(best)
    encoder = model.model.encoders["graph"]
    assert type(encoder).__name__ == "GraphEncoder" and encoder.in_dim == 4
    assert sorted(model.model.encoders) == ["graph", "image", "text"]


def test_graph_only_baseline_fits(graph_root: Path, tmp_path: Path) -> None:
    metrics = _fit(graph_root, tmp_path, GRAPH, "configs/baselines/graph_only.yaml", CSV)
    assert 0.0 <= float(metrics["test/acc"]) <= 1.0


def test_the_encoder_takes_node_dim_from_the_data(
    graph_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [*quickstart_args(graph_root, tmp_path, GRAPH, CSV), "--model.encoders.graph.init_args.in_dim=5"]
    main(["fit", *args, "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1"])
    # the data's node_dim (4) replaces the encoder's in_dim, with a note: the graphs have 4 features
    assert "model.encoders.graph.init_args.in_dim: 5 -> 4" in capsys.readouterr().err
