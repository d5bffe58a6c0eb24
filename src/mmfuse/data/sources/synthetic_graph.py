"""The graph quickstart dataset: paired image + text + graph samples whose label needs all three.

The same scheme as :mod:`mmfuse.data.sources.synthetic`, with the audio clip replaced by a graph: each
modality carries one hidden bit, drawn as independent fair coins, and the label is the number of
active cues (``zero`` .. ``three``). Any one or two modalities predict the label with at most 50%
accuracy; all three with 100%. Images and sentences are drawn exactly as in the quickstart (same
seed, same files), and the graph takes the bit that the audio carries there.

The graph's bit is **structural**: active = a ring (one cycle through all its nodes), inactive = a
random tree (each node joins a uniformly chosen earlier node), with the same node count (uniform in
``min_nodes..max_nodes``, independent of the bit) and the same node features: a one-hot of one of 4
node types drawn uniformly and independently per node. Node features and node count say nothing
about the bit, so a model that ignores the edges is at chance on it (the graph-only baseline then
stays at 25% of the label instead of 50%); a GNN sees it from the degrees (a ring has no leaf, a
tree always has at least two). Node ids are shuffled and every undirected edge is
written once (``GraphDataModule`` adds the reverse edges).

Files: ``images/*.png``, ``graphs/*.json`` (the format of :mod:`mmfuse.data.modalities.graph_io`),
``manifest.csv`` (columns ``id, split, image, text, graph, label``) and ``params.json``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmfuse.data.manifest.source import ManifestSource
from mmfuse.data.sources.staging import MANIFEST_FILE, is_complete, staged_dataset
from mmfuse.data.sources.synthetic import (
    _IMAGE,
    _TEXT,
    LABELS,
    _image,
    _rng,
    _text,
    draw_bits,
    draw_splits,
)

#: bump whenever the output for the same parameters changes, so ``prepare()`` regenerates old copies
GENERATOR_VERSION = 1
MODALITIES = ("image", "text", "graph")  # column order of the bits returned by draw_bits
NODE_TYPES = 4  # node features: a one-hot of this many types, i.e. GraphDataModule(node_dim=4)
_GRAPH = 6  # the graphs' random stream (synthetic.py uses 1..5)


def random_graph(rng: np.random.Generator, active: bool, min_nodes: int, max_nodes: int) -> dict[str, Any]:
    """One graph in the JSON format: a ring when ``active``, else a random recursive tree.

    Returns:
        ``{"x": N one-hot rows of NODE_TYPES ints, "edge_index": [[sources], [targets]]}`` with each
        undirected edge listed once.
    """
    n = int(rng.integers(min_nodes, max_nodes + 1))
    if active:
        edges = [(i, (i + 1) % n) for i in range(n)]  # n edges, every degree 2
    else:
        edges = [(int(rng.integers(0, i)), i) for i in range(1, n)]  # n - 1 edges, >= 2 leaves
    relabel = rng.permutation(n)  # node ids say nothing about the position in the ring or tree
    order = rng.permutation(len(edges))
    src = [int(relabel[edges[k][0]]) for k in order]
    dst = [int(relabel[edges[k][1]]) for k in order]
    types = rng.integers(0, NODE_TYPES, size=n)  # same distribution for rings and trees
    x = np.eye(NODE_TYPES, dtype=np.int64)[types]  # (N, NODE_TYPES)
    return {"x": x.tolist(), "edge_index": [src, dst]}


def _params(num_samples: int, seed: int, image_size: int, min_nodes: int, max_nodes: int) -> dict[str, Any]:
    if num_samples < 10:
        raise ValueError(f"num_samples={num_samples}: need at least 10 so that val and test are not empty")
    if seed < 0:
        raise ValueError(f"seed={seed} must be >= 0")
    if image_size < 24:
        raise ValueError(f"image_size={image_size} must be >= 24: smaller circles and squares blur together")
    if not 3 <= min_nodes <= max_nodes:
        raise ValueError(
            f"need 3 <= min_nodes <= max_nodes, got min_nodes={min_nodes}, max_nodes={max_nodes}"
        )
    return {
        "generator": __name__,
        "version": GENERATOR_VERSION,
        "num_samples": num_samples,
        "seed": seed,
        "image_size": image_size,
        "min_nodes": min_nodes,
        "max_nodes": max_nodes,
    }


def generate_graph_dataset(
    root: str | Path, num_samples: int, seed: int, image_size: int, min_nodes: int = 8, max_nodes: int = 16
) -> Path:
    """Write the dataset to ``root`` (replacing an older synthetic dataset there) and return the manifest.

    Written to a temporary sibling folder renamed into place at the end, as the quickstart's.

    Raises:
        ValueError: a parameter out of range.
        FileExistsError: ``root`` exists and holds something other than a synthetic dataset.
    """
    root = Path(root)
    params = _params(num_samples, seed, image_size, min_nodes, max_nodes)
    with staged_dataset(root, params, "image + text + graph samples", ["images", "graphs"]) as tmp:
        bits = draw_bits(num_samples, seed)  # columns: image, text, graph
        splits = draw_splits(num_samples, seed)
        with (tmp / MANIFEST_FILE).open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["id", "split", *MODALITIES, "label"])
            for i in range(num_samples):
                sample_id = f"{i:06d}"
                image_path, graph_path = f"images/{sample_id}.png", f"graphs/{sample_id}.json"
                image = _image(_rng(seed, _IMAGE, i), bool(bits[i, 0]), image_size)
                Image.fromarray(image, "RGB").save(tmp / image_path)
                text = _text(_rng(seed, _TEXT, i), bool(bits[i, 1]))
                graph = random_graph(_rng(seed, _GRAPH, i), bool(bits[i, 2]), min_nodes, max_nodes)
                (tmp / graph_path).write_text(json.dumps(graph, separators=(",", ":")), encoding="utf-8")
                label = LABELS[int(bits[i].sum())]
                writer.writerow([sample_id, splits[i], image_path, text, graph_path, label])
    return root / MANIFEST_FILE


class SyntheticGraphSource(ManifestSource):
    """The graph quickstart dataset: generated on first use, then read like any manifest.

    Each sample has an image (circle or square), a sentence (an alarm or a calm word) and a graph
    (a ring or a tree with the same number of nodes and the same node-feature distribution); the
    label is how many of the three cues are "active", so no one or two modalities predict it better
    than 50% and only fusing all three reaches 100%. Read graphs with ``GraphDataModule(node_dim=4)``.

    Args:
        root: folder the dataset is written to (``manifest.csv``, ``images/``, ``graphs/``, ``params.json``).
        num_samples: number of samples (70% train, 15% val, 15% test).
        seed: random seed; the same parameters always generate byte-identical files.
        image_size: width and height of the square RGB images, in pixels (at least 24).
        min_nodes: fewest nodes of a graph (at least 3: a ring needs 3).
        max_nodes: most nodes of a graph.
    """

    def __init__(
        self,
        root: str = "data/synthetic_graph",
        num_samples: int = 3000,
        seed: int = 0,
        image_size: int = 32,
        min_nodes: int = 8,
        max_nodes: int = 16,
    ) -> None:
        _params(num_samples, seed, image_size, min_nodes, max_nodes)  # fail at config time, not in prepare
        super().__init__(path=str(Path(root) / MANIFEST_FILE), target="label")
        self.root = root
        self.num_samples = num_samples
        self.seed = seed
        self.image_size = image_size
        self.min_nodes = min_nodes
        self.max_nodes = max_nodes

    def prepare(self) -> None:
        """Generate the dataset unless ``root`` already holds one made with the same parameters."""
        root = Path(self.root)
        params = _params(self.num_samples, self.seed, self.image_size, self.min_nodes, self.max_nodes)
        if not is_complete(root, params):
            generate_graph_dataset(
                root, self.num_samples, self.seed, self.image_size, self.min_nodes, self.max_nodes
            )
