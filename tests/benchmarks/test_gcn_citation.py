"""benchmarks/gcn_citation.py on a small generated citation-like graph (the real data needs a download)."""

from __future__ import annotations

import importlib.util
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

pytest.importorskip("torch_geometric")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny tensors: threads only add overhead, and on a busy machine OpenMP threads that wait for
    each other make sparse and scatter kernels 10-100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gcn_citation", ROOT / "benchmarks" / "gcn_citation.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gcn_citation"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _citation_graph(
    seed: int = 0, classes: int = 3, n_rest: int = 880, words: int = 60
) -> dict[str, np.ndarray]:
    """A stochastic block model: 20 labelled nodes per class first, then the rest; bag-of-words features
    that only hint at the class (a third of each node's words come from its class's topic)."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.repeat(np.arange(classes), 20), rng.integers(0, classes, n_rest)])
    n = len(y)
    same = y[:, None] == y[None, :]
    p = np.where(same, 8 / (n / classes), 0.6 / n)  # ~8 neighbours in the class, ~0.4 outside
    upper = np.triu(rng.random((n, n)) < p, k=1)
    adj = upper | upper.T
    x = np.zeros((n, words), dtype=np.float32)
    topic = words // classes
    for i in range(n):
        own = rng.integers(0, topic, 2) + y[i] * topic
        x[i, np.concatenate([own, rng.integers(0, words, 4)])] = 1.0
    return {"x": x, "y": y, "adj": adj}


def _write_planetoid_raw(root: Path, name: str, graph: dict[str, np.ndarray], n_test: int = 300) -> None:
    """The files PyG's Planetoid reads (``ind.<name>.{x,y,allx,ally,tx,ty,graph,test.index}``)."""
    raw = root / name / "raw"
    raw.mkdir(parents=True)
    x, y, adj = graph["x"], graph["y"], graph["adj"]
    n = len(y)
    onehot = np.eye(int(y.max()) + 1, dtype=np.int64)[y]
    n_train, n_all = int((np.bincount(y[:60]) > 0).sum()) * 20, n - n_test
    test_index = np.arange(n_all, n)
    parts = {
        "x": x[:n_train],
        "y": onehot[:n_train],
        "allx": x[:n_all],
        "ally": onehot[:n_all],
        "tx": x[test_index],
        "ty": onehot[test_index],
        "graph": {i: np.flatnonzero(adj[i]).tolist() for i in range(n)},
    }
    for key, value in parts.items():
        with (raw / f"ind.{name.lower()}.{key}").open("wb") as f:
            pickle.dump(value, f)
    (raw / f"ind.{name.lower()}.test.index").write_text("\n".join(map(str, test_index)) + "\n")


def test_gcn_uses_the_graph(bench: ModuleType) -> None:
    g = _citation_graph()
    x, y = torch.from_numpy(g["x"]), torch.from_numpy(g["y"])
    x = x / x.sum(1, keepdim=True)  # row-normalised, as NormalizeFeatures
    edge_index = torch.from_numpy(np.stack(np.nonzero(g["adj"]))).long()
    n = len(y)
    train = torch.arange(n) < 60
    val = (torch.arange(n) >= 60) & (torch.arange(n) < 360)
    test = torch.arange(n) >= 360
    with_edges = bench.train_gcn(x, edge_index, y, train, val, test, seed=0)
    without = bench.train_gcn(x, torch.zeros(2, 0, dtype=torch.long), y, train, val, test, seed=0)
    assert with_edges.test_acc >= 0.85 and with_edges.test_acc >= without.test_acc + 0.2
    assert 10 < with_edges.epochs <= 200
    assert bench.train_gcn(x, edge_index, y, train, val, test, epochs=7, patience=0).epochs == 7


def test_script_reads_planetoid_files_and_prints_the_comparison(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_planetoid_raw(tmp_path, "Cora", _citation_graph(seed=1))
    x, _, _, train, val, test = bench.load_planetoid(str(tmp_path), "Cora")
    assert int(train.sum()) == 60 and int(val.sum()) == 500 and int(test.sum()) == 300
    assert torch.allclose(x.sum(1), torch.ones(len(x)))  # row-normalised features
    results = bench.main(["--root", str(tmp_path), "--datasets", "Cora", "--runs", "2"])
    assert len(results["Cora"]) == 2 and min(results["Cora"]) > 80
    out = capsys.readouterr().out
    assert "| Cora |" in out and "| 81.5 |" in out
