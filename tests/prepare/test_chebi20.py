"""ChEBI-20 converter: Text2Mol's split files, mol_graphs.zip and embeddings -> graph files + manifest."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.prepare.conftest import check_data, load_script, read_rows

MOLECULES = {  # split file: [(CID, edges, node identifiers)]
    "training": [
        (2244, [(0, 1), (1, 0), (1, 2), (2, 1)], ["111", "222", "111"]),
        (5793, [(0, 1), (1, 0)], ["222", "999"]),  # 999: not in the embeddings -> UNK
        (962, [], ["333"]),  # one atom, no bond
    ],
    "val": [(1983, [(0, 1), (1, 0)], ["111", "333"]), (3672, [(0, 1), (1, 0)], ["222", "333"])],
    "test": [(6137, [(0, 1), (1, 0)], ["333", "111"]), (5950, [(0, 1), (1, 0)], ["111", "111"])],
}


def write_release(root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    embeddings = {k: rng.standard_normal(300) for k in ("111", "222", "333", "UNK")}
    root.mkdir(parents=True)
    np.save(root / "token_embedding_dict.npy", np.array(embeddings, dtype=object), allow_pickle=True)
    with zipfile.ZipFile(root / "mol_graphs.zip", "w") as archive:
        for name, molecules in MOLECULES.items():
            lines = []
            for cid, edges, nodes in molecules:
                mol2vec = " ".join(f"{v:.3f}" for v in rng.standard_normal(4))
                lines.append(f"{cid}\t{mol2vec}\tThe molecule {cid} is a test compound.\n")
                edge_lines = "".join(f"{a} {b}\n" for a, b in edges)
                idents = "".join(f"{i} {ident}\n" for i, ident in enumerate(nodes))
                archive.writestr(f"{cid}.graph", f"edgelist:\n{edge_lines}\nidx to identifier:\n{idents}")
            (root / f"mol2vec_ChEBI_20_{name}.txt").write_text("".join(lines))
    return root, embeddings


def test_converts_the_release(tmp_path: Path) -> None:
    pytest.importorskip("torch_geometric")
    (release, embeddings), out = write_release(tmp_path / "data"), tmp_path / "chebi20"
    assert load_script("chebi20").main(["--root", str(release), "--out", str(out)]) == 0
    rows = read_rows(out / "manifest.jsonl")
    assert [(r["id"], r["split"]) for r in rows] == [
        ("2244", "train"), ("5793", "train"), ("962", "train"),
        ("1983", "val"), ("3672", "val"), ("6137", "test"), ("5950", "test"),
    ]  # fmt: skip
    assert rows[0] == {
        "id": "2244",
        "split": "train",
        "graph": "graphs/2244.pt",
        "text": "The molecule 2244 is a test compound.",
    }
    graph = torch.load(out / "graphs" / "2244.pt", weights_only=True)
    assert graph["edge_index"].tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]
    assert torch.allclose(graph["x"][1], torch.tensor(embeddings["222"], dtype=torch.float32))
    unknown = torch.load(out / "graphs" / "5793.pt", weights_only=True)["x"][1]
    assert torch.allclose(unknown, torch.tensor(embeddings["UNK"], dtype=torch.float32))
    lone = torch.load(out / "graphs" / "962.pt", weights_only=True)
    assert lone["x"].shape == (1, 300) and lone["edge_index"].shape == (2, 0)
    check_data("configs/benchmarks/chebi20.yaml", out / "manifest.jsonl")


def test_a_missing_graph_or_a_bad_one_is_named(tmp_path: Path) -> None:
    (release, _), script = write_release(tmp_path / "data"), load_script("chebi20")
    with (release / "mol_graphs.zip").open("rb") as f:
        members = zipfile.ZipFile(f).namelist()
    with zipfile.ZipFile(release / "mol_graphs.zip", "w") as archive:  # rewritten without 3672, 6137 broken
        for member in members:
            if member == "6137.graph":
                archive.writestr(member, "edgelist:\n0 5\n\nidx to identifier:\n0 111\n1 333\n")
            elif member != "3672.graph":
                archive.writestr(member, "edgelist:\n\nidx to identifier:\n0 111\n")
    with pytest.raises(script.c.PrepareError, match=r"no 3672\.graph for molecule 3672 of the val split"):
        script.main(["--root", str(release), "--out", str(tmp_path / "out")])
    (release / "mol2vec_ChEBI_20_val.txt").write_text("")
    with pytest.raises(
        script.c.PrepareError, match=r"6137\.graph: an edge is not two node indices in 0\.\.1"
    ):
        script.main(["--root", str(release), "--out", str(tmp_path / "out")])
