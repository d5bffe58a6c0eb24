"""ChEBI-20 (Edwards et al., 2021, Text2Mol) -> an mmfuse manifest: a molecule's graph + its description,
for text-molecule retrieval.

Reads the ``data/`` folder of Text2Mol's repository (github.com/cnedwards/text2mol) as its code loads it::

    mol2vec_ChEBI_20_training.txt    one molecule a line, tab-separated: CID, mol2vec vector, description
    mol2vec_ChEBI_20_val.txt         (26,407 / 3,301 / 3,301 molecules)
    mol2vec_ChEBI_20_test.txt
    mol_graphs.zip                   <CID>.graph: "edgelist:", one "i j" edge a line, a blank line,
                                     "idx to identifier:", one "i <Morgan substructure id>" a line
    token_embedding_dict.npy         substructure id -> its 300-number mol2vec embedding ("UNK" too)

and writes ``<out>/graphs/<CID>.pt`` (``{"x": (N, 300), "edge_index": (2, E)}``: each atom's features
are its substructure's mol2vec embedding, as Text2Mol's GCN reads them) and ``<out>/manifest.jsonl``
(``id``: the CID, ``split``, ``graph``, ``text``: the description). The embedding dictionary is a
pickle, which can run code stored in the file: convert only the file Text2Mol published.

    python scripts/prepare/chebi20.py --root data/downloads/text2mol/data
    mmfuse fit --config configs/benchmarks/chebi20.yaml
"""

from __future__ import annotations

import csv
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this script
import _common as c

SPLIT_FILES = {"train": "training", "val": "val", "test": "test"}
CONFIG = "configs/benchmarks/chebi20.yaml"
DEFAULT_OUT = "data/chebi20"


def read_split(path: Path) -> list[tuple[str, str]]:
    """``(CID, description)`` of each line of a ``mol2vec_ChEBI_20_<split>.txt`` file."""
    c.need(path, "one of Text2Mol's split files")
    out = []
    with path.open(newline="", encoding="utf-8") as f:
        for number, fields in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
            if len(fields) != 3 or not fields[0].strip().isdigit():
                raise c.PrepareError(f"{path}, line {number}: expected CID<tab>mol2vec<tab>description")
            out.append((fields[0].strip(), fields[2].strip()))
    return out


def parse_graph(text: str, where: str, embeddings: dict, unknown: np.ndarray) -> dict[str, torch.Tensor]:
    """A ``.graph`` file -> ``x (N, 300)`` float32 and ``edge_index (2, E)`` int64."""
    lines = [line.strip() for line in text.splitlines()]
    try:
        split_at = lines.index("idx to identifier:")
    except ValueError:
        raise c.PrepareError(f"{where}: no 'idx to identifier:' line") from None
    if not lines or lines[0] != "edgelist:":
        raise c.PrepareError(f"{where}: does not start with 'edgelist:'")
    try:
        edges = [tuple(int(v) for v in line.split()) for line in lines[1:split_at] if line]
        nodes = {int(i): ident for i, ident in (line.split() for line in lines[split_at + 1 :] if line)}
    except ValueError as e:
        raise c.PrepareError(f"{where}: not a list of integers ({e})") from None
    if sorted(nodes) != list(range(len(nodes))) or not nodes:
        raise c.PrepareError(f"{where}: node indices are not 0..N-1")
    if any(len(e) != 2 or not (0 <= e[0] < len(nodes) and 0 <= e[1] < len(nodes)) for e in edges):
        raise c.PrepareError(f"{where}: an edge is not two node indices in 0..{len(nodes) - 1}")
    x = np.stack([np.asarray(embeddings.get(nodes[i], unknown), dtype=np.float32) for i in range(len(nodes))])
    edge_index = torch.tensor(edges, dtype=torch.long).reshape(-1, 2).T.contiguous()  # (2, E)
    return {"x": torch.from_numpy(x), "edge_index": edge_index}


def main(argv: list[str] | None = None) -> int:
    parser = c.parser(
        __doc__ or "", "Text2Mol's data/ folder (the split files, mol_graphs.zip, ...)", DEFAULT_OUT
    )
    args = parser.parse_args(argv)
    root: Path = args.root
    splits = {s: read_split(root / f"mol2vec_ChEBI_20_{name}.txt") for s, name in SPLIT_FILES.items()}
    embeddings_file = c.need(root / "token_embedding_dict.npy", "the substructure embeddings")
    embeddings = np.load(embeddings_file, allow_pickle=True)[()]  # a pickled dict: see the module docstring
    if not isinstance(embeddings, dict) or "UNK" not in embeddings:
        raise c.PrepareError(f"{embeddings_file}: expected a dictionary with an 'UNK' entry")
    archive_file = c.need(root / "mol_graphs.zip", "the molecules' graphs")
    rows: list[dict[str, str]] = []
    with zipfile.ZipFile(archive_file) as archive:
        members = {Path(n).name: n for n in archive.namelist() if n.endswith(".graph")}
        for split, molecules in splits.items():
            chosen = c.limited(molecules, args.limit)
            progress = c.Progress(f"chebi20 {split}", len(chosen))
            for cid, description in chosen:  # type: ignore[misc]
                member = members.get(f"{cid}.graph")
                if member is None:
                    raise c.PrepareError(
                        f"{archive_file}: no {cid}.graph for molecule {cid} of the {split} split"
                    )
                where = f"{archive_file}:{member}"
                graph = parse_graph(
                    archive.read(member).decode("ascii"), where, embeddings, embeddings["UNK"]
                )
                path = args.out / "graphs" / f"{cid}.pt"
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.save(graph, path)
                rows.append({"id": cid, "split": split, "graph": f"graphs/{cid}.pt", "text": description})
                progress.step()
    manifest = c.write_manifest(args.out / "manifest.jsonl", rows, ["id", "split", "graph", "text"])
    print(f"chebi20: {len(rows)} molecules ({c.split_counts(rows)})")
    c.next_steps(manifest, CONFIG, f"{DEFAULT_OUT}/manifest.jsonl")
    return 0


if __name__ == "__main__":
    c.run(main)
