"""Graph files and GraphDataModule: the JSON format, PyG .pt files, every malformed-file error, batching."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("torch_geometric")

from torch_geometric.data import Data, HeteroData

from mmfuse.data.manifest.errors import DataError, SampleError
from mmfuse.data.manifest.source import ManifestSource
from mmfuse.data.modalities.graph import GraphDataModule
from mmfuse.data.multimodal import MultimodalDataModule
from mmfuse.data.problems import check
from tests.conftest import write_manifest


def _json(root: Path, name: str, obj: Any) -> str:
    (root / name).write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return name


def _pt(root: Path, name: str, obj: Any) -> str:
    torch.save(obj, root / name)
    return name


TRIANGLE_TAIL = {"x": [[1, 0], [0, 1], [1, 1], [0, 0]], "edge_index": [[0, 1, 2, 2], [1, 2, 0, 3]]}


def test_json_graph_is_symmetrised_and_typed(tmp_path: Path) -> None:
    name = _json(tmp_path, "g.json", TRIANGLE_TAIL)
    g = GraphDataModule(node_dim=2).load(name, tmp_path, train=False)
    assert g["x"].dtype == torch.float32 and g["x"].shape == (4, 2)
    assert g["edge_index"].dtype == torch.int64
    edges = set(map(tuple, g["edge_index"].T.tolist()))
    assert edges == {(0, 1), (1, 0), (1, 2), (2, 1), (0, 2), (2, 0), (2, 3), (3, 2)}
    # as given: the 4 directed edges only
    g = GraphDataModule(node_dim=2, to_undirected=False).load(name, tmp_path, train=False)
    assert g["edge_index"].tolist() == TRIANGLE_TAIL["edge_index"]


def test_json_duplicate_edges_merged_and_edge_features_averaged(tmp_path: Path) -> None:
    obj = {"x": [[0.0], [1.0]], "edge_index": [[0, 1], [1, 0]], "edge_attr": [[2.0], [4.0]]}
    g = GraphDataModule(node_dim=1, edge_dim=1).load(_json(tmp_path, "g.json", obj), tmp_path, train=False)
    assert g["edge_index"].tolist() == [[0, 1], [1, 0]]
    assert g["edge_attr"].tolist() == [[3.0], [3.0]]  # (0,1) and (1,0) listed with 2 and 4: mean
    # a scalar per edge is one edge feature
    obj["edge_attr"] = [2.0, 4.0]
    g = GraphDataModule(node_dim=1, edge_dim=1).load(_json(tmp_path, "h.json", obj), tmp_path, train=False)
    assert g["edge_attr"].shape == (2, 1)


def test_edgeless_graph_and_isolated_nodes(tmp_path: Path) -> None:
    dm = GraphDataModule(node_dim=2)
    for edges in ([[], []], []):
        g = dm.load(_json(tmp_path, "g.json", {"x": [[1, 2], [3, 4]], "edge_index": edges}), tmp_path, False)
        assert g["x"].shape == (2, 2) and g["edge_index"].shape == (2, 0)
    g = dm.load(_json(tmp_path, "g.json", {"x": [[1, 2]] * 5, "edge_index": [[0], [1]]}), tmp_path, False)
    assert g["x"].shape == (5, 2)  # nodes 2..4 isolated


def test_empty_graph_only_where_allowed(tmp_path: Path) -> None:
    name = _json(tmp_path, "g.json", {"x": [], "edge_index": [[], []]})
    with pytest.raises(SampleError, match=r"g\.json: empty graph: no nodes"):
        GraphDataModule(node_dim=3).load(name, tmp_path, train=False)
    g = GraphDataModule(node_dim=3, allow_empty=True).load(name, tmp_path, train=False)
    assert g["x"].shape == (0, 3) and g["edge_index"].shape == (2, 0)


def test_pt_files_from_pyg_data_and_from_dicts(tmp_path: Path) -> None:
    x, ei = torch.randn(3, 4, dtype=torch.float64), torch.tensor([[0, 1], [1, 2]], dtype=torch.int32)
    data = Data(x=x, edge_index=ei, edge_attr=torch.ones(2, 2), y=torch.tensor([1]))
    dm = GraphDataModule(node_dim=4, edge_dim=2, to_undirected=False)
    for name in (_pt(tmp_path, "d.pt", data), _pt(tmp_path, "e.pt", data.to_dict())):
        g = dm.load(name, tmp_path, train=False)
        assert torch.equal(g["x"], x.float()) and g["edge_index"].tolist() == ei.tolist()
        assert g["edge_index"].dtype == torch.int64 and g["edge_attr"].shape == (2, 2)


def test_pt_with_foreign_objects_needs_trust_pickle(tmp_path: Path) -> None:
    # a numpy array is a Python object that weights_only refuses: unpickling it can run code
    name = _pt(
        tmp_path,
        "d.pt",
        Data(x=torch.ones(2, 1), edge_index=torch.zeros(2, 0, dtype=torch.long), a=np.zeros(2)),
    )
    with pytest.raises(SampleError, match=r"d\.pt: unsafe content refused .*trust_pickle: true"):
        GraphDataModule(node_dim=1).load(name, tmp_path, train=False)
    g = GraphDataModule(node_dim=1, trust_pickle=True).load(name, tmp_path, train=False)
    assert g["x"].shape == (2, 1)


def _hetero() -> HeteroData:
    h = HeteroData()
    h["a"].x = torch.ones(2, 1)
    return h


JSON_ERRORS = [
    ("{not json", "not a valid JSON file"),
    ([1, 2], "expected a JSON object"),
    ({"edge_index": [[0], [1]]}, "no 'x' key"),
    ({"x": [[1.0]]}, "no 'edge_index' key"),
    ({"x": [[1.0, 2.0], [3.0]], "edge_index": []}, "ragged 'x': node 1 has 1 values, node 0 has 2"),
    ({"x": [1.0, 2.0], "edge_index": []}, "'x' must be a list of per-node lists"),
    ({"x": [["a", "b"]], "edge_index": []}, "'x' must hold numbers, found non-numeric values"),
    ({"x": [[True, False]], "edge_index": []}, "'x' must hold numbers, found true/false values"),
    ({"x": [[1.0], [2.0]], "edge_index": [[0, 1], [1]]}, "ragged 'edge_index': 2 sources but 1 targets"),
    ({"x": [[1.0], [2.0]], "edge_index": [[0, 1]]}, "'edge_index' must be two lists"),
    (
        {"x": [[1.0], [2.0]], "edge_index": [[0.0], [1.5]]},
        "'edge_index' must hold integers, found non-integer",
    ),
    (
        {"x": [[1.0], [2.0]], "edge_index": [[0], [2]]},
        "edge index out of range: .*node 2 but the graph has 2 nodes",
    ),
    ({"x": [[1.0], [2.0]], "edge_index": [[-1], [0]]}, "edge index out of range: .*node -1"),
    (
        {"x": [[1.0], [2.0]], "edge_index": [[0], [1]], "edge_attr": [[1.0], [2.0]]},
        r"'edge_attr' must have one row per edge, shape \(1, F_e\); got \(2, 1\)",
    ),
    ({"x": [[1.0], [2.0]], "edge_index": [[0], [1]], "edge_attr": [[1.0], []]}, "ragged 'edge_attr'"),
    ('{"x": [[NaN]], "edge_index": []}', "'x' holds NaN or inf"),
    ({"x": [[1.0, 2.0]], "edge_index": []}, "nodes have 2 features but node_dim=1"),
]


@pytest.mark.parametrize(("content", "reason"), JSON_ERRORS, ids=[r[:28] for _, r in JSON_ERRORS])
def test_malformed_json_names_file_and_reason(tmp_path: Path, content: Any, reason: str) -> None:
    name = _json(tmp_path, "bad.json", content)
    with pytest.raises(SampleError, match=rf"bad\.json: .*{reason}") as info:
        GraphDataModule(node_dim=1).load(name, tmp_path, train=False)
    assert info.value.file == str(tmp_path / "bad.json")


PT_ERRORS = [
    ({"x": torch.ones(2, 1)}, "no 'edge_index' tensor"),
    ({"x": torch.ones(2, 1, dtype=torch.bool), "edge_index": torch.zeros(2, 0).long()}, "'x' must be a real"),
    ({"x": torch.ones(2, 1, 1), "edge_index": torch.zeros(2, 0).long()}, r"'x' must be 2-D .*\(2, 1, 1\)"),
    ({"x": torch.ones(2, 1), "edge_index": torch.tensor([[0.0], [1.0]])}, "'edge_index' must hold integers"),
    ({"x": torch.ones(2, 1), "edge_index": torch.zeros(3, 1).long()}, r"shape \(2, E\), got \(3, 1\)"),
    ({"x": torch.ones(2, 1), "edge_index": torch.tensor([[0], [5]])}, "edge index out of range"),
    ({"x": torch.tensor([[float("inf")]]), "edge_index": torch.zeros(2, 0).long()}, "NaN or inf"),
    (_hetero(), "heterogeneous graph"),
    ([1, 2, 3], "expected a torch_geometric Data object or a dict of tensors, got list"),
]


@pytest.mark.parametrize(("obj", "reason"), PT_ERRORS, ids=[r[:28] for _, r in PT_ERRORS])
def test_malformed_pt_names_file_and_reason(tmp_path: Path, obj: Any, reason: str) -> None:
    name = _pt(tmp_path, "bad.pt", obj)
    with pytest.raises(SampleError, match=rf"bad\.pt: .*{reason}"):
        # trust_pickle: HeteroData is refused by weights_only before its kind can be told
        GraphDataModule(node_dim=1, trust_pickle=isinstance(obj, HeteroData)).load(name, tmp_path, False)


def test_missing_corrupt_and_unknown_files(tmp_path: Path) -> None:
    dm = GraphDataModule(node_dim=1)
    with pytest.raises(SampleError, match=r"nope\.json: file not found"):
        dm.load("nope.json", tmp_path, train=False)
    (tmp_path / "junk.pt").write_bytes(b"\x00not a torch file")
    with pytest.raises(SampleError, match=r"junk\.pt: cannot read \.pt file"):
        dm.load("junk.pt", tmp_path, train=False)
    (tmp_path / "g.graphml").write_text("<graphml/>")
    with pytest.raises(SampleError, match=r"g\.graphml: unknown graph file type '\.graphml'"):
        dm.load("g.graphml", tmp_path, train=False)


def test_edge_features_checked_against_edge_dim(tmp_path: Path) -> None:
    name = _json(
        tmp_path, "g.json", {"x": [[1.0], [2.0]], "edge_index": [[0], [1]], "edge_attr": [[1.0, 2.0]]}
    )
    with pytest.raises(SampleError, match="edges have 2 features but edge_dim=3"):
        GraphDataModule(node_dim=1, edge_dim=3).load(name, tmp_path, train=False)
    bare = _json(tmp_path, "h.json", {"x": [[1.0], [2.0]], "edge_index": [[0], [1]]})
    with pytest.raises(SampleError, match="no 'edge_attr' but edge_dim=2"):
        GraphDataModule(node_dim=1, edge_dim=2).load(bare, tmp_path, train=False)
    # edge_dim 0 ignores edge features in the file
    assert "edge_attr" not in GraphDataModule(node_dim=1).load(name, tmp_path, train=False)


def test_collate_disjoint_union_with_missing_sample() -> None:
    dm = GraphDataModule(node_dim=2, edge_dim=1)
    a = {"x": torch.ones(3, 2), "edge_index": torch.tensor([[0, 1], [1, 2]]), "edge_attr": torch.ones(2, 1)}
    b = {"x": torch.zeros(2, 2), "edge_index": torch.tensor([[1], [0]]), "edge_attr": 2 * torch.ones(1, 1)}
    out = dm.collate([a, None, b])
    assert out["x"].shape == (5, 2)
    assert out["batch"].tolist() == [0, 0, 0, 2, 2]
    assert out["node_counts"].tolist() == [3, 0, 2]
    assert out["edge_index"].tolist() == [[0, 1, 4], [1, 2, 3]]  # b's nodes offset by 3
    assert out["edge_attr"].flatten().tolist() == [1.0, 1.0, 2.0]
    empty = dm.collate([None, None])
    assert empty["x"].shape == (0, 2) and empty["node_counts"].tolist() == [0, 0]
    assert dm.encoder_requirements() == {"in_dim": 2, "edge_dim": 1}


def _graph_manifest(tmp_path: Path, bad: dict[str, Any] | None = None) -> Path:
    """10 rings of 3-5 nodes (6 train, 2 val, 2 test); id s4's graph may be ``bad``."""
    (tmp_path / "g").mkdir()
    rows = []
    for i in range(10):
        n = 3 + i % 3
        ring = {
            "x": [[1.0, float(i % 2)]] * n,
            "edge_index": [list(range(n)), [(k + 1) % n for k in range(n)]],
        }
        _json(tmp_path / "g", f"{i}.json", bad if (bad is not None and i == 4) else ring)
        split = "train" if i < 6 else ("val" if i < 8 else "test")
        rows.append(
            {"id": f"s{i}", "split": split, "graph": f"g/{i}.json", "label": "odd" if i % 2 else "even"}
        )
    return write_manifest(tmp_path / "manifest.csv", rows)


def test_standalone_graph_classification_batches(tmp_path: Path) -> None:
    source = ManifestSource(str(_graph_manifest(tmp_path)))
    graph_dm = GraphDataModule(node_dim=2, source=source, batch_size=4)
    dm = MultimodalDataModule.alone(graph_dm)
    dm.setup("fit")
    assert len(dm.class_names) == 2
    batches = list(dm.train_dataloader())
    graph = batches[0].inputs["graph"]
    assert set(graph) == {"x", "edge_index", "batch", "node_counts"}
    counts = torch.cat([b.inputs["graph"]["node_counts"] for b in batches])
    assert sorted(counts.tolist()) == [3, 3, 4, 4, 5, 5]  # the 6 train rings, each whole
    assert graph["x"].shape == (int(graph["node_counts"].sum()), 2)


def test_malformed_graph_in_manifest_names_row_id_and_column(tmp_path: Path) -> None:
    manifest = _graph_manifest(tmp_path, bad={"x": [[1.0, 0.0]], "edge_index": [[0], [3]]})
    dm = MultimodalDataModule(
        ManifestSource(str(manifest)), {"graph": GraphDataModule(node_dim=2)}, batch_size=10
    )
    dm.setup("fit")
    with pytest.raises(DataError, match=r"4\.json.*row 5.*id 's4'.*column 'graph'.*edge index out of range"):
        next(iter(dm.train_dataloader()))


class _CallsGetcwd:
    """Unpickling this calls ``os.getcwd``: harmless, but a function from a module torch blocks."""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (os.getcwd, ())


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_unsafe_pt_is_refused_with_a_message_of_our_own(tmp_path: Path, legacy: bool) -> None:
    # torch 2.13 words the refusal of a blocked module differently ("... whose module posix is
    # blocked") and advises weights_only=False; the message must be mmfuse's whatever torch says
    graph = {"x": torch.ones(2, 1), "edge_index": torch.zeros(2, 0, dtype=torch.long), "a": _CallsGetcwd()}
    torch.save(graph, tmp_path / "u.pt", _use_new_zipfile_serialization=not legacy)
    with pytest.raises(SampleError) as info:
        GraphDataModule(node_dim=1).load("u.pt", tmp_path, train=False)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'u.pt'}: unsafe content refused (")
    assert "getcwd" in message  # what was refused
    assert "trust_pickle: true" in message and "off by default" in message and "can run code" in message
    assert "weights_only` set to `False`" not in message and "will likely succeed" not in message
    assert "cannot read" not in message and "corrupt" not in message


def test_unreadable_pt_raises_a_sample_error_whatever_torch_raises(tmp_path: Path) -> None:
    (tmp_path / "t.pt").write_bytes(b"hello world")  # torch.load raises KeyError on this
    with pytest.raises(SampleError, match=r"t\.pt: cannot read \.pt file"):
        GraphDataModule(node_dim=1).load("t.pt", tmp_path, train=False)


DEEP = '{"x": ' + "[" * 1000 + "]" * 1000 + ', "edge_index": []}'  # 2 KB, nested 1000 levels


def test_deeply_nested_json_is_a_problem_of_its_row(tmp_path: Path) -> None:
    manifest = _graph_manifest(tmp_path)
    (tmp_path / "g" / "4.json").write_text(DEEP)
    report = check(ManifestSource(str(manifest)), {"graph": GraphDataModule(node_dim=2)}, num_workers=2)
    [error] = report.problems
    assert (error.row, error.sample_id, error.column, error.split) == (5, "s4", "graph", "train")
    assert error.file == str(tmp_path / "g" / "4.json")
    # Python 3.11's json recurses per level; a newer one may parse it and fail the shape check
    assert "nested too deeply" in error.reason or "not a regular table" in error.reason
    data = MultimodalDataModule(ManifestSource(str(manifest)), {"graph": GraphDataModule(node_dim=2)}, 10)
    data.setup("fit")
    with pytest.raises(DataError, match=r"4\.json, row 5, id 's4', column 'graph': "):
        next(iter(data.train_dataloader()))
    skip = MultimodalDataModule(
        ManifestSource(str(manifest)), {"graph": GraphDataModule(node_dim=2)}, 10, on_bad_sample="skip"
    )
    skip.setup("fit")
    assert skip.selection.accounting()["train"] == {"rows": 6, "used": 5, "skipped": 1}
    assert [e.sample_id for e in skip.selection.skipped()] == ["s4"]


def test_json_graph_over_the_size_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    name = _json(tmp_path, "big.json", {"x": [[0.5]] * 200, "edge_index": []})  # ~1.4 KB
    with pytest.raises(
        SampleError, match=r"big\.json: JSON graph file is 0\.0 MB, more than max_json_mb=0\.001"
    ):
        GraphDataModule(node_dim=1, max_json_mb=0.001).load(name, tmp_path, train=False)
    assert GraphDataModule(node_dim=1).load(name, tmp_path, train=False)["x"].shape == (200, 1)
    with pytest.raises(ValueError, match="max_json_mb"):
        GraphDataModule(node_dim=1, max_json_mb=0)
