"""The graph quickstart dataset: deterministic, the quickstart's images and texts, a structural graph bit."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mmfuse.data.sources.synthetic import LABELS, draw_bits
from mmfuse.data.sources.synthetic_graph import (
    NODE_TYPES,
    SyntheticGraphSource,
    generate_graph_dataset,
    random_graph,
)

N = 40
SIZE = 24


def _rows(root: Path) -> list[dict[str, str]]:
    with (root / "manifest.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic_graph") / "ds"
    generate_graph_dataset(root, num_samples=N, seed=0, image_size=SIZE)
    return root


def graph_bit(path: Path) -> bool:
    """Ring (True) or tree (False), checked from the file alone: connected, and n or n - 1 edges."""
    g = json.loads(path.read_text())
    n, (src, dst) = len(g["x"]), g["edge_index"]
    neighbours: dict[int, set[int]] = {i: set() for i in range(n)}
    for a, b in zip(src, dst, strict=True):
        neighbours[a].add(b)
        neighbours[b].add(a)
    seen, todo = {0}, [0]
    while todo:
        for b in neighbours[todo.pop()] - seen:
            seen.add(b)
            todo.append(b)
    assert len(seen) == n, "connected"
    if len(src) == n:
        assert all(len(v) == 2 for v in neighbours.values()), "a ring: every degree 2"
        return True
    assert len(src) == n - 1, "a tree"
    return False


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path, dataset: Path) -> None:
    again = generate_graph_dataset(tmp_path / "again", num_samples=N, seed=0, image_size=SIZE).parent
    other = generate_graph_dataset(tmp_path / "other", num_samples=N, seed=1, image_size=SIZE).parent
    for name in ("manifest.csv", "graphs/000000.json", "graphs/000039.json", "images/000007.png"):
        assert (again / name).read_bytes() == (dataset / name).read_bytes(), name
        assert (other / name).read_bytes() != (dataset / name).read_bytes(), name


def test_images_texts_and_labels_are_the_quickstarts(synthetic_root: Path, tmp_path: Path) -> None:
    # the session's quickstart data: 160 samples, seed 0, 24 px; the graph takes the audio's bit
    root = generate_graph_dataset(tmp_path / "g", num_samples=160, seed=0, image_size=24).parent
    ours, theirs = _rows(root), _rows(synthetic_root)
    for a, b in zip(ours, theirs, strict=True):
        assert (a["id"], a["split"], a["text"], a["label"]) == (b["id"], b["split"], b["text"], b["label"])
        assert (root / a["image"]).read_bytes() == (synthetic_root / b["image"]).read_bytes()


def test_graph_bit_is_structural_and_the_label_counts_the_cues(dataset: Path) -> None:
    bits = draw_bits(N, seed=0)  # columns: image, text, graph
    rows = _rows(dataset)
    assert list(rows[0]) == ["id", "split", "image", "text", "graph", "label"]
    for i, row in enumerate(rows):
        assert graph_bit(dataset / row["graph"]) == bits[i, 2], row["id"]
        assert row["label"] == LABELS[int(bits[i].sum())]
    assert 0 < bits[:, 2].sum() < N


def test_node_count_and_features_say_nothing_about_the_bit() -> None:
    rng = np.random.default_rng(0)
    sizes: dict[bool, list[int]] = {True: [], False: []}
    types: dict[bool, Counter[int]] = {True: Counter(), False: Counter()}
    for k in range(600):
        active = k % 2 == 0
        g = random_graph(rng, active, 8, 16)
        x = np.asarray(g["x"])
        assert x.shape[1] == NODE_TYPES and (x.sum(1) == 1).all()  # one-hot
        sizes[active].append(len(x))
        types[active].update(x.argmax(1).tolist())
    assert set(sizes[True]) == set(sizes[False]) == set(range(8, 17))
    assert abs(np.mean(sizes[True]) - np.mean(sizes[False])) < 0.5
    for active in (True, False):
        freq = np.array([types[active][t] for t in range(NODE_TYPES)]) / sum(types[active].values())
        assert np.allclose(freq, 1 / NODE_TYPES, atol=0.02)


def test_every_graph_reads_with_graph_data_module(dataset: Path) -> None:
    pytest.importorskip("torch_geometric")
    from mmfuse.data.modalities.graph import GraphDataModule

    dm = GraphDataModule(node_dim=NODE_TYPES)
    for row in _rows(dataset):
        g = dm.load(row["graph"], dataset, train=True)
        assert 8 <= len(g["x"]) <= 16 and g["edge_index"].shape[1] in (2 * len(g["x"]), 2 * len(g["x"]) - 2)


def test_prepare_regenerates_only_when_needed(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    SyntheticGraphSource(root=str(root), num_samples=N, image_size=SIZE).prepare()
    assert (
        json.loads((root / "params.json").read_text())["generator"] == "mmfuse.data.sources.synthetic_graph"
    )
    sentinel = root / "sentinel"
    sentinel.touch()
    SyntheticGraphSource(root=str(root), num_samples=N, image_size=SIZE).prepare()
    assert sentinel.exists()
    SyntheticGraphSource(root=str(root), num_samples=N, image_size=SIZE, max_nodes=12).prepare()
    assert not sentinel.exists()
    assert max(len(json.loads(p.read_text())["x"]) for p in (root / "graphs").iterdir()) <= 12
    manifest = SyntheticGraphSource(root=str(root), num_samples=N, image_size=SIZE, max_nodes=12).load()
    assert manifest.columns == ["id", "split", "image", "text", "graph", "label"]


def test_refuses_to_replace_a_folder_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not a synthetic dataset"):
        generate_graph_dataset(tmp_path, num_samples=N, seed=0, image_size=SIZE)
    assert (tmp_path / "mine.txt").read_text() == "precious"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_samples": 3}, "num_samples"),
        ({"seed": -1}, "seed"),
        ({"image_size": 16}, "image_size"),
        ({"min_nodes": 2}, "3 <= min_nodes"),
        ({"min_nodes": 9, "max_nodes": 8}, "min_nodes <= max_nodes"),
    ],
)
def test_bad_parameters_fail_at_construction(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SyntheticGraphSource(**kwargs)  # type: ignore[arg-type]
