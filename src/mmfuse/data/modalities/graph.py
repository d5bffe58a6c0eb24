"""Graphs: one graph file per sample (JSON or PyTorch Geometric ``.pt``), batched with PyTorch Geometric."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from mmfuse.data.manifest.errors import SampleError
from mmfuse.data.modalities.base import ModalityDataModule, Sample
from mmfuse.data.modalities.graph_io import MAX_JSON_MB, read_graph

if TYPE_CHECKING:
    from mmfuse.data.manifest.source import ManifestSource


def require_pyg() -> None:
    """Raise an ImportError that says how to install PyTorch Geometric when it is missing."""
    try:
        import torch_geometric  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "graphs need PyTorch Geometric: pip install 'mmfuse[graph]' (or pip install torch_geometric)"
        ) from e


class GraphDataModule(ModalityDataModule):
    """Reads one graph per sample and batches graphs with PyTorch Geometric.

    A graph cell holds a path, relative to the manifest's folder, to a ``.json`` file in the format
    documented in :mod:`mmfuse.data.modalities.graph_io` or a ``.pt`` file saved from a PyG ``Data`` object
    (loaded with ``torch.load(weights_only=True)``). Every graph must have ``node_dim`` node
    features (and ``edge_dim`` edge features when ``edge_dim > 0``). Malformed files stop with an
    error naming the file, row, id and column.

    Edges are directed pairs ``(source, target)``; with ``to_undirected=True`` (the default) every
    edge is also added reversed and duplicates are merged, so a file may list each undirected edge
    once. The encoder receives PyG's disjoint-union batch:

    - ``x`` ``(N, F)`` float node features of every graph in the batch, graph after graph;
    - ``edge_index`` ``(2, E)`` long, node indices into ``x``;
    - ``batch`` ``(N,)`` long, the graph (batch row) each node belongs to;
    - ``node_counts`` ``(B,)`` long, nodes per graph; a missing sample is an empty graph (0 nodes);
    - ``edge_attr`` ``(E, F_e)`` float, only when ``edge_dim > 0``.

    Args:
        node_dim: node features ``F`` every graph has (the encoder's ``in_dim``).
        column: manifest column holding the graph file path.
        edge_dim: edge features ``F_e`` every graph has; 0 ignores any ``edge_attr`` in the files.
        to_undirected: add each edge's reverse and merge duplicate edges (edge features of merged
            duplicates are averaged). False keeps the edges exactly as the file lists them.
        allow_empty: accept graphs with no node (their tokens are all masked, like a missing
            sample, but the sample counts as present). False makes them an error.
        trust_pickle: load ``.pt`` files that ``weights_only=True`` refuses with full unpickling,
            which can run code from the file. Only for files you trust. Off: such a file is a
            problem ("unsafe content refused") of its row.
        max_json_mb: a ``.json`` graph file larger than this is a problem of its row, refused
            before parsing (which takes about ten times the file's size in memory).
        required: an empty cell is a problem (check-data reports it; training raises or skips the
            row, see ``on_bad_sample``) instead of marking this modality missing for the sample.
        source: the manifest, only needed when this module is used alone.
        batch_size: samples per batch, only used when alone.
        num_workers: DataLoader worker processes, only used when alone.
    """

    name = "graph"
    cell_is_path = True

    def __init__(
        self,
        node_dim: int,
        column: str = "graph",
        edge_dim: int = 0,
        to_undirected: bool = True,
        allow_empty: bool = False,
        trust_pickle: bool = False,
        max_json_mb: float = MAX_JSON_MB,
        required: bool = False,
        source: ManifestSource | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        super().__init__(
            column=column, required=required, source=source, batch_size=batch_size, num_workers=num_workers
        )
        if node_dim < 1:
            raise ValueError(f"node_dim must be >= 1, got {node_dim}")
        if edge_dim < 0:
            raise ValueError(f"edge_dim must be >= 0, got {edge_dim}")
        require_pyg()
        self.node_dim = node_dim
        self.edge_dim = edge_dim
        self.to_undirected = to_undirected
        self.allow_empty = allow_empty
        if max_json_mb <= 0:
            raise ValueError(f"max_json_mb must be positive, got {max_json_mb}")
        self.trust_pickle = trust_pickle
        self.max_json_mb = max_json_mb

    def load(self, cell: str, root: Path, train: bool) -> Sample:
        """Read one graph file into ``{"x": (N, F), "edge_index": (2, E)}`` (+ ``"edge_attr": (E, F_e)``).

        Raises:
            SampleError: the file is missing, unreadable or malformed, has the wrong number of node
                or edge features, or has no node while ``allow_empty`` is False.
        """
        path = root / cell
        graph = read_graph(path, trust_pickle=self.trust_pickle, max_json_mb=self.max_json_mb)
        x, edge_index = graph["x"], graph["edge_index"]
        N = x.shape[0]
        if N == 0:
            if not self.allow_empty:
                raise SampleError("empty graph: no nodes (set allow_empty: true to accept)", file=str(path))
            x = x.reshape(0, self.node_dim)
        if x.shape[1] != self.node_dim:
            raise SampleError(
                f"nodes have {x.shape[1]} features but node_dim={self.node_dim}", file=str(path)
            )
        sample = {"x": x, "edge_index": edge_index}
        if self.edge_dim:
            E = edge_index.shape[1]
            attr = graph.get("edge_attr")
            if attr is None and E:
                raise SampleError(f"no 'edge_attr' but edge_dim={self.edge_dim}", file=str(path))
            attr = torch.zeros(0, self.edge_dim) if attr is None or E == 0 else attr
            if attr.shape[1] != self.edge_dim:
                raise SampleError(
                    f"edges have {attr.shape[1]} features but edge_dim={self.edge_dim}", file=str(path)
                )
            sample["edge_attr"] = attr
        if self.to_undirected and edge_index.shape[1]:
            from torch_geometric.utils import to_undirected

            if self.edge_dim:
                sample["edge_index"], sample["edge_attr"] = to_undirected(
                    edge_index, sample["edge_attr"], num_nodes=N, reduce="mean"
                )
            else:
                sample["edge_index"] = to_undirected(edge_index, num_nodes=N)
        return sample

    def collate(self, samples: Sequence[Sample | None]) -> dict[str, Tensor]:
        """Batch graphs with ``torch_geometric.data.Batch.from_data_list``; ``None`` becomes an empty graph.

        Returns:
            ``{"x": (N, F), "edge_index": (2, E), "batch": (N,), "node_counts": (B,)}``, plus
            ``"edge_attr": (E, F_e)`` when ``edge_dim > 0``.
        """
        from torch_geometric.data import Batch, Data

        empty: Sample = {
            "x": torch.zeros(0, self.node_dim),
            "edge_index": torch.zeros(2, 0, dtype=torch.long),
        }
        if self.edge_dim:
            empty["edge_attr"] = torch.zeros(0, self.edge_dim)
        graphs = [Data(**(empty if s is None else s)) for s in samples]
        batch = Batch.from_data_list(graphs)
        out = {
            "x": batch.x,
            "edge_index": batch.edge_index,
            "batch": batch.batch,
            "node_counts": torch.tensor([len(g.x) for g in graphs], dtype=torch.long),  # (B,)
        }
        if self.edge_dim:
            out["edge_attr"] = batch.edge_attr
        return out

    def encoder_requirements(self) -> dict[str, int]:
        return {"in_dim": self.node_dim, "edge_dim": self.edge_dim}
