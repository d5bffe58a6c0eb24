"""Graph encoders: Kipf & Welling's GCN layer, and a GCN / GIN / GAT encoder whose nodes are the tokens.

Shape letters here (beside those of :mod:`mmfuse.types`): ``N`` nodes of every graph in the batch
together, ``E`` edges, ``F`` node features, ``F_e`` edge features, ``N_max`` nodes of the batch's
largest graph. PyTorch Geometric is imported inside the functions that need it, so that importing
mmfuse works without it; :class:`GCNLayer` needs only torch.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from mmfuse.models.masking import zero_masked
from mmfuse.types import EncoderOutput


def gcn_norm(
    edge_index: Tensor, num_nodes: int, edge_weight: Tensor | None = None, dtype: torch.dtype | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """The edges of ``Â = D̂^{-1/2} (A + I) D̂^{-1/2}`` with their weights.

    Self-loops already in ``edge_index`` are dropped and exactly one self-loop of weight 1 is added
    per node, so ``I`` is added once whatever the file held. ``d̂_t`` is the (weighted) number of
    edges into ``t``, its self-loop included; an edge ``s -> t`` weighs ``w / sqrt(d̂_s d̂_t)``.

    Args:
        edge_index: ``(2, E)`` long, rows ``(source, target)``.
        num_nodes: ``N``.
        edge_weight: ``(E,)`` weights of ``A`` (default 1); duplicate edges add up.
        dtype: dtype of the returned weights (default float32).

    Returns:
        ``sources (E')``, ``targets (E')`` and ``weights (E')``, ``E' = E - self-loops + N``.
    """
    src, dst = edge_index
    keep = src != dst
    loops = torch.arange(num_nodes, device=edge_index.device)
    w = (
        torch.ones(src.shape[0], device=edge_index.device, dtype=dtype)
        if edge_weight is None
        else edge_weight
    )
    src = torch.cat([src[keep], loops])
    dst = torch.cat([dst[keep], loops])
    w = torch.cat([w[keep], torch.ones(num_nodes, device=w.device, dtype=w.dtype)])
    deg = torch.zeros(num_nodes, device=w.device, dtype=w.dtype).index_add_(0, dst, w)  # (N,) d̂
    inv_sqrt = deg.pow(-0.5).masked_fill(deg <= 0, 0.0)  # only negative weights can give deg <= 0
    return src, dst, inv_sqrt[src] * w * inv_sqrt[dst]


class GCNLayer(nn.Module):
    """One graph convolution of Kipf & Welling (ICLR 2017): ``H' = Â H W + b``, no activation.

    ``Â = D̂^{-1/2} (A + I) D̂^{-1/2}`` (see :func:`gcn_norm`): ``h'_v = Σ_{u ∈ N(v) ∪ {v}} W h_u /
    sqrt(d̂_v d̂_u) + b``. The weight is applied first and the result propagated (cheaper when
    ``out_dim < in_dim``); the bias is added after propagation. ``W`` is Glorot-uniform, ``b`` zero,
    as in the paper. Edges are used as given, **not symmetrised**: edge ``s -> t`` carries ``h_s``
    to ``t``, so an undirected graph lists both directions (``GraphDataModule`` adds them with
    ``to_undirected: true``; PyG's citation datasets already have them). Numerically equal to
    ``torch_geometric.nn.GCNConv`` (tested), written with ``torch.sparse.mm`` so it needs only torch.

    Works on one big graph (node classification) as well as on a batch of graphs (their disjoint union).

    Args:
        in_dim: input node features ``F``.
        out_dim: output node features.
        bias: add a learnt bias after propagation.
    """

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.lin = nn.Linear(in_dim, out_dim, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_dim)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.lin.weight)  # Glorot & Bengio: U(±sqrt(6 / (in + out)))
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        """Args:
            x: ``(N, F)`` node features.
            edge_index: ``(2, E)`` long, rows ``(source, target)``.
            edge_weight: ``(E,)`` optional edge weights of ``A`` (default 1).

        Returns:
            ``(N, out_dim)`` node features.
        """
        N = x.shape[0]
        h = self.lin(x)  # (N, out)
        # sums in float32 under mixed precision: sparse kernels lack half types on some devices
        dtype = torch.float32 if h.dtype in (torch.float16, torch.bfloat16) else h.dtype
        src, dst, w = gcn_norm(edge_index, N, edge_weight, dtype=dtype)
        # a sparse matmul rather than index_add_: the scatter kernels slow down by 10-100x on a
        # busy CPU (e.g. beside DataLoader workers), sparse.mm does not
        adj = torch.sparse_coo_tensor(torch.stack([dst, src]), w, (N, N), check_invariants=False)  # Â
        out = torch.sparse.mm(adj, h.to(dtype)).to(h.dtype)  # (N, out)
        return out if self.bias is None else out + self.bias


class _Block(nn.Module):
    """conv -> norm -> ReLU -> dropout, plus the input when ``residual`` (same width in and out)."""

    def __init__(self, conv: nn.Module, width: int, norm: str, residual: bool, dropout: float, edges: bool):
        super().__init__()
        self.conv = conv
        self.norm: nn.Module = nn.Identity()
        if norm == "layer":
            self.norm = nn.LayerNorm(width)  # per node
        elif norm == "batch":
            from torch_geometric.nn import BatchNorm

            # statistics over the batch's nodes; allow_single_element: a batch of one node is legal
            self.norm = BatchNorm(width, allow_single_element=True)
        self.residual = residual
        self.dropout = nn.Dropout(dropout)
        self.edges = edges  # the conv takes edge features

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor | None) -> Tensor:
        h = self.conv(x, edge_index, edge_attr) if self.edges else self.conv(x, edge_index)  # (N, width)
        h = self.dropout(torch.relu(self.norm(h)))
        return x + h if self.residual else h


class GraphEncoder(nn.Module):
    """Message passing over each sample's graph; every node becomes a token.

    ``num_layers`` graph convolutions (``hidden`` wide, each followed by ``norm``, ReLU and dropout,
    with a residual connection where input and output widths match, i.e. every layer but a first
    one that changes the width), then a linear projection to ``d_model``. The batch is PyG's
    disjoint union of the graphs (what :class:`~mmfuse.data.modalities.graph.GraphDataModule` collates); the
    nodes are padded per graph with ``torch_geometric.utils.to_dense_batch``. No positions are
    added: nodes have no order, so relabelling a graph's nodes permutes its node tokens and leaves
    every pooled value unchanged.

    Convolutions:

    - ``"gcn"``: :class:`GCNLayer` (Kipf & Welling). Takes no edge features.
    - ``"gin"``: ``torch_geometric.nn.GINConv`` with a learnt ε and a 2-layer MLP (Xu et al.,
      2019); ``GINEConv`` when ``edge_dim > 0``.
    - ``"gat"``: ``torch_geometric.nn.GATConv`` with ``heads`` heads of width ``hidden / heads``,
      concatenated (Veličković et al., 2018); edge features enter the attention when ``edge_dim > 0``.

    Tokens (``tokens``):

    - ``"nodes"``: ``(B, N_max, D)``, mask True for real nodes. A fuser that mean-pools the tokens
      (Concat, Late, and the cross-attention fuser's last step) computes the mean readout itself.
    - ``"readout"``: ``(B, 1, D)``, the pooled graph vector (``readout``: mean, sum or max over its
      nodes); a pooled-only encoder, for fusers that pool.
    - ``"both"``: the readout token first, then the nodes: ``(B, 1 + N_max, D)``.

    A graph with no node (a missing sample) has every token masked and zero.

    Args:
        in_dim: node features ``F`` (the data's ``node_dim``).
        d_model: output width ``D``.
        conv: ``"gcn"``, ``"gin"`` or ``"gat"``.
        num_layers: graph convolutions; 0 gives a node-features-only model that ignores the edges.
        hidden: width of every convolution's output.
        residual: add each layer's input to its output where the widths match.
        norm: ``"batch"`` (BatchNorm over the batch's nodes; a missing sample has no node, so it does
            not shift the statistics), ``"layer"`` (LayerNorm of each node's vector) or ``"none"``.
            LayerNorm rescales every node to unit variance, which erases the degree information that
            GCN carries in the size of its sums: prefer ``"batch"`` where structure matters.
        dropout: dropout after every layer (and on GAT's attention weights).
        tokens: ``"nodes"``, ``"readout"`` or ``"both"`` (see above).
        readout: how nodes are pooled into the readout token: ``"mean"``, ``"sum"`` or ``"max"``.
        heads: GAT attention heads (must divide ``hidden``).
        edge_dim: edge features ``F_e`` (GIN and GAT only); 0 ignores edge features.
    """

    def __init__(
        self,
        in_dim: int,
        d_model: int = 64,
        conv: Literal["gcn", "gin", "gat"] = "gcn",
        num_layers: int = 2,
        hidden: int = 64,
        residual: bool = True,
        norm: Literal["none", "layer", "batch"] = "batch",
        dropout: float = 0.0,
        tokens: Literal["nodes", "readout", "both"] = "nodes",
        readout: Literal["mean", "sum", "max"] = "mean",
        heads: int = 4,
        edge_dim: int = 0,
    ) -> None:
        super().__init__()
        for label, value, allowed in (
            ("conv", conv, ("gcn", "gin", "gat")),
            ("norm", norm, ("none", "layer", "batch")),
            ("tokens", tokens, ("nodes", "readout", "both")),
            ("readout", readout, ("mean", "sum", "max")),
        ):
            if value not in allowed:
                raise ValueError(f"GraphEncoder: {label} must be one of {allowed}, got {value!r}")
        if num_layers < 0:
            raise ValueError(f"GraphEncoder: num_layers must be >= 0, got {num_layers}")
        if conv == "gcn" and edge_dim:
            raise ValueError(
                "GraphEncoder: conv='gcn' takes no edge features; use gin or gat, or edge_dim: 0"
            )
        if conv == "gat" and hidden % heads:
            raise ValueError(f"GraphEncoder: heads={heads} must divide hidden={hidden}")
        self.in_dim = in_dim
        self.d_model = d_model
        self.edge_dim = edge_dim
        self.tokens = tokens
        self.readout = readout
        layers, width = [], in_dim
        for _ in range(num_layers):
            layers.append(
                _Block(
                    _make_conv(conv, width, hidden, heads, dropout, edge_dim),
                    hidden,
                    norm,
                    residual=residual and width == hidden,
                    dropout=dropout,
                    edges=edge_dim > 0,
                )
            )
            width = hidden
        self.layers = nn.ModuleList(layers)
        self.proj = nn.Linear(width, d_model)

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        batch: Tensor,
        node_counts: Tensor,
        edge_attr: Tensor | None = None,
    ) -> EncoderOutput:
        """Encode a batch of graphs.

        Args:
            x: ``(N, F)`` node features, graph after graph.
            edge_index: ``(2, E)`` long, node indices into ``x``.
            batch: ``(N,)`` long, the batch row of each node (sorted).
            node_counts: ``(B,)`` long, nodes per graph (0 for a missing sample).
            edge_attr: ``(E, F_e)`` edge features (read when ``edge_dim > 0``).

        Returns:
            EncoderOutput with tokens ``(B, T, D)`` and mask ``(B, T)``: ``T = N_max`` for
            ``"nodes"``, 1 for ``"readout"``, ``1 + N_max`` for ``"both"`` (``N_max >= 1``).
        """
        from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool
        from torch_geometric.utils import to_dense_batch

        N, F = x.shape
        B = node_counts.shape[0]
        if self.in_dim != F:
            raise ValueError(f"GraphEncoder expects x (N, {self.in_dim}), got {(N, F)}")
        if self.edge_dim and (edge_attr is None or edge_attr.shape != (edge_index.shape[1], self.edge_dim)):
            got = None if edge_attr is None else tuple(edge_attr.shape)
            raise ValueError(f"GraphEncoder expects edge_attr (E, {self.edge_dim}), got {got}")
        h = x
        for layer in self.layers:
            h = layer(h, edge_index, edge_attr)  # (N, hidden)
        h = self.proj(h)  # (N, D)
        has_nodes = node_counts > 0  # (B,)
        parts, masks = [], []
        if self.tokens != "nodes":
            pool = {"mean": global_mean_pool, "sum": global_add_pool, "max": global_max_pool}[self.readout]
            parts.append(pool(h, batch, size=B)[:, None])  # (B, 1, D)
            masks.append(has_nodes[:, None])
        if self.tokens != "readout":
            # at least one token per row, also for a batch of only empty graphs (attention needs a key)
            n_max = max(1, int(node_counts.max())) if B else 1
            dense, mask = to_dense_batch(h, batch, batch_size=B, max_num_nodes=n_max)  # (B, N_max, D)
            parts.append(dense)
            masks.append(mask)
        mask = torch.cat(masks, dim=1)  # (B, T)
        return EncoderOutput(tokens=zero_masked(torch.cat(parts, dim=1), mask), mask=mask)


def _make_conv(conv: str, in_dim: int, out_dim: int, heads: int, dropout: float, edge_dim: int) -> nn.Module:
    if conv == "gcn":
        return GCNLayer(in_dim, out_dim)
    if conv == "gin":
        from torch_geometric.nn import GINConv, GINEConv

        mlp = nn.Sequential(nn.Linear(in_dim, out_dim), nn.ReLU(), nn.Linear(out_dim, out_dim))
        return GINEConv(mlp, train_eps=True, edge_dim=edge_dim) if edge_dim else GINConv(mlp, train_eps=True)
    from torch_geometric.nn import GATConv

    return GATConv(in_dim, out_dim // heads, heads=heads, dropout=dropout, edge_dim=edge_dim or None)
