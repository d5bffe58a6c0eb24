"""Graph encoders: the GCN layer against the paper and PyG, invariances, masks, a structural task."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

from mmfuse.models.encoders.gnn import GCNLayer, GraphEncoder

pyg = pytest.importorskip("torch_geometric")

from torch_geometric.data import Batch, Data  # noqa: E402

from mmfuse.data.sources.synthetic_graph import random_graph  # noqa: E402
from mmfuse.models.masking import masked_mean  # noqa: E402

D = 8


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny tensors: threads only add overhead, and on a busy machine OpenMP threads that wait for
    each other make sparse and scatter kernels 10-100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


CONVS = ["gcn", "gin", "gat"]


def _graph(n: int, seed: int, edges: int | None = None, f: int = 3) -> Data:
    g = torch.Generator().manual_seed(seed)
    e = 2 * n if edges is None else edges
    ei = torch.randint(0, n, (2, e), generator=g)
    ei = torch.cat([ei, ei.flip(0)], dim=1)  # undirected
    return Data(x=torch.randn(n, f, generator=g), edge_index=ei)


def _inputs(graphs: list[Data]) -> dict[str, Tensor]:
    b = Batch.from_data_list(graphs)
    counts = torch.tensor([g.num_nodes for g in graphs])
    return {"x": b.x, "edge_index": b.edge_index, "batch": b.batch, "node_counts": counts}


def _encoder(conv: Any, tokens: Any = "nodes", readout: Any = "mean") -> GraphEncoder:
    """In eval mode: BatchNorm then uses its running statistics, the same for every batch."""
    torch.manual_seed(0)
    enc = GraphEncoder(
        3, d_model=D, conv=conv, num_layers=3, hidden=8, heads=2, tokens=tokens, readout=readout
    )
    return enc.eval()


# --- the GCN layer ------------------------------------------------------------------------------


def test_gcn_layer_is_the_papers_formula_on_a_path() -> None:
    # path 0 - 1 - 2: d̂ = (2, 3, 2); Â = D̂^-1/2 (A + I) D̂^-1/2
    layer = GCNLayer(3, 3)
    with torch.no_grad():
        layer.lin.weight.copy_(torch.eye(3))
        layer.bias.copy_(torch.tensor([0.0, 0.0, 1.0]))
    x = torch.eye(3)
    edges = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    s6 = 1 / math.sqrt(6)
    expected = torch.tensor([[1 / 2, s6, 0], [s6, 1 / 3, s6], [0, s6, 1 / 2]]) + torch.tensor([0, 0, 1.0])
    assert torch.allclose(layer(x, edges), expected, atol=1e-6)
    # a self-loop already in the file is not added twice; a duplicated one neither
    looped = torch.cat([edges, torch.tensor([[1, 1, 2], [1, 1, 2]])], dim=1)
    assert torch.allclose(layer(x, looped), expected, atol=1e-6)
    # directed edges are used as given: 0 -> 1 only reaches node 1
    one_way = layer(x, torch.tensor([[0], [1]]))
    assert torch.allclose(one_way[0], torch.tensor([1.0, 0, 1])) and one_way[1, 0] > 0


def test_gcn_layer_glorot_init_and_zero_bias() -> None:
    torch.manual_seed(0)
    layer = GCNLayer(300, 100)
    bound = math.sqrt(6 / 400)
    w = layer.lin.weight
    assert (
        w.abs().max() <= bound
        and w.abs().max() > 0.95 * bound
        and abs(w.std() - bound / math.sqrt(3)) < 0.005
    )
    assert torch.equal(layer.bias, torch.zeros(100))
    assert GCNLayer(4, 2, bias=False).bias is None


@pytest.mark.parametrize("weighted", [False, True])
def test_gcn_layer_equals_pyg_gcnconv(weighted: bool) -> None:
    from torch_geometric.nn import GCNConv

    torch.manual_seed(0)
    N = 30
    ei = torch.randint(0, N - 3, (2, 80))  # nodes 27..29 isolated; directed edges, duplicates
    ei = ei[:, ei[0] != ei[1]]  # GCNConv keeps a weighted self-loop's weight; GCNLayer uses 1 (Â = A + I)
    if not weighted:
        ei = torch.cat([ei, torch.tensor([[4, 5, 5], [4, 5, 5]])], dim=1)  # self-loops in the input
    w = torch.rand(ei.shape[1]) + 0.1 if weighted else None
    ours, theirs = GCNLayer(6, 5), GCNConv(6, 5)
    with torch.no_grad():
        theirs.lin.weight.copy_(ours.lin.weight)
        ours.bias.normal_()
        theirs.bias.copy_(ours.bias)
    x = torch.randn(N, 6)
    assert torch.allclose(ours(x, ei, w), theirs(x, ei, w), atol=1e-5)


# --- the encoder ---------------------------------------------------------------------------------


@pytest.mark.parametrize("conv", CONVS)
@pytest.mark.parametrize("readout", ["mean", "sum", "max"])
def test_relabelling_nodes_permutes_tokens_and_keeps_the_graph_embedding(conv: Any, readout: str) -> None:
    enc = _encoder(conv, tokens="both", readout=readout)
    g = _graph(7, seed=1)
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(3))  # new id of old node i is inv[i]
    inv = torch.argsort(perm)
    relabelled = Data(x=g.x[perm], edge_index=inv[g.edge_index])
    a, b = enc(**_inputs([g])), enc(**_inputs([relabelled]))
    assert torch.allclose(a.tokens[:, 0], b.tokens[:, 0], atol=1e-5)  # the readout token
    assert torch.allclose(a.tokens[0, 1:][perm], b.tokens[0, 1:], atol=1e-5)  # nodes, relabelled
    assert torch.allclose(masked_mean(a.tokens, a.mask), masked_mean(b.tokens, b.mask), atol=1e-5)
    # but the structure matters: the same features with other edges give another embedding
    rewired = Data(x=g.x, edge_index=torch.tensor([[0, 1], [1, 0]]))
    assert not torch.allclose(a.tokens[:, 0], enc(**_inputs([rewired])).tokens[:, 0], atol=1e-3)


@pytest.mark.parametrize("conv", CONVS)
def test_batched_equals_per_graph(conv: Any) -> None:
    enc = _encoder(conv, tokens="both", readout="sum")
    graphs = [_graph(5, 0), _graph(2, 1, edges=0), _graph(9, 2)]
    together = enc(**_inputs(graphs))
    for i, g in enumerate(graphs):
        alone = enc(**_inputs([g]))
        n = g.num_nodes + 1
        assert torch.allclose(together.tokens[i, :n], alone.tokens[0], atol=1e-5)
        assert torch.equal(together.mask[i, :n], alone.mask[0])


@pytest.mark.parametrize("conv", CONVS)
def test_padding_mask_missing_and_empty_graphs(conv: Any) -> None:
    enc = _encoder(conv)
    empty = Data(x=torch.zeros(0, 3), edge_index=torch.zeros(2, 0, dtype=torch.long))
    out = enc(**_inputs([_graph(4, 0), empty, _graph(6, 1)]))
    assert out.tokens.shape == (3, 6, D)
    expected = torch.arange(6)[None, :] < torch.tensor([4, 0, 6])[:, None]
    assert torch.equal(out.mask, expected)
    assert torch.all(out.tokens[~expected] == 0) and torch.all(out.tokens[expected].abs().sum(-1) > 0)
    # a batch of only missing graphs: one masked token per row, no NaN
    for tokens in ("nodes", "readout", "both"):
        out = _encoder(conv, tokens=tokens)(**_inputs([empty, empty]))
        assert out.tokens.shape[:2] == (2, 1 if tokens != "both" else 2) and not out.mask.any()
        assert torch.all(out.tokens == 0)


@pytest.mark.parametrize("conv", CONVS)
def test_isolated_nodes_see_only_themselves(conv: Any) -> None:
    enc = _encoder(conv)
    g = _graph(6, 0, edges=0)  # edge-less: every node isolated
    out = enc(**_inputs([g])).tokens[0]
    other = Data(x=g.x.clone(), edge_index=g.edge_index)
    other.x[1:] = torch.randn(5, 3)
    assert torch.isfinite(out).all()
    assert torch.allclose(enc(**_inputs([other])).tokens[0, 0], out[0], atol=1e-6)
    assert not torch.allclose(enc(**_inputs([other])).tokens[0, 1], out[1], atol=1e-3)


@pytest.mark.parametrize("conv", CONVS)
@pytest.mark.parametrize("norm", ["layer", "batch", "none"])
def test_gradient_on_every_parameter(conv: Any, norm: Any) -> None:
    torch.manual_seed(0)
    enc = GraphEncoder(3, d_model=D, conv=conv, num_layers=2, hidden=8, heads=2, norm=norm, tokens="both")
    out = enc(**_inputs([_graph(5, 0), _graph(1, 1, edges=0)]))
    masked_mean(out.tokens, out.mask).pow(2).sum().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert enc.in_dim == 3 and enc.d_model == D


@pytest.mark.parametrize("conv", ["gin", "gat"])
def test_edge_features_change_the_output(conv: Any) -> None:
    torch.manual_seed(0)
    enc = GraphEncoder(3, d_model=D, conv=conv, hidden=8, heads=2, edge_dim=2, tokens="readout").eval()
    inputs = _inputs([_graph(5, 0)])
    E = inputs["edge_index"].shape[1]
    a = enc(**inputs, edge_attr=torch.zeros(E, 2)).tokens
    b = enc(**inputs, edge_attr=torch.ones(E, 2)).tokens
    assert not torch.allclose(a, b, atol=1e-4)
    with pytest.raises(ValueError, match=r"expects edge_attr \(E, 2\), got None"):
        enc(**inputs)


def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="gcn' takes no edge features"):
        GraphEncoder(3, conv="gcn", edge_dim=2)
    with pytest.raises(ValueError, match="heads=3 must divide hidden=8"):
        GraphEncoder(3, conv="gat", hidden=8, heads=3)
    with pytest.raises(ValueError, match="conv must be one of"):
        GraphEncoder(3, conv="sage")
    with pytest.raises(ValueError, match=r"expects x \(N, 3\), got \(5, 4\)"):
        GraphEncoder(3)(**_inputs([_graph(5, 0, f=4)]))


# --- a structural task: edges needed -----------------------------------------------------------


def _ring_or_tree(n: int, seed: int) -> tuple[list[Data], Tensor]:
    rng = np.random.default_rng(seed)
    graphs, labels = [], []
    for _ in range(n):
        label = int(rng.integers(2))
        g = random_graph(rng, bool(label), 8, 16)
        ei = torch.tensor(g["edge_index"])
        graphs.append(
            Data(x=torch.tensor(g["x"], dtype=torch.float), edge_index=torch.cat([ei, ei.flip(0)], 1))
        )
        labels.append(label)
    return graphs, torch.tensor(labels)


def _fit_and_score(conv: Any, use_edges: bool) -> float:
    train, y_train = _ring_or_tree(192, seed=0)
    test, y_test = _ring_or_tree(200, seed=1)
    torch.manual_seed(0)
    enc = GraphEncoder(4, d_model=16, conv=conv, num_layers=2, hidden=16, heads=2, tokens="readout")
    head = torch.nn.Linear(16, 2)
    opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], lr=0.01)

    def logits(graphs: list[Data]) -> Tensor:
        inputs = _inputs(graphs)
        if not use_edges:
            inputs["edge_index"] = torch.zeros(2, 0, dtype=torch.long)
        return head(enc(**inputs).tokens[:, 0])

    for _ in range(15):
        for i in range(0, len(train), 32):
            loss = torch.nn.functional.cross_entropy(logits(train[i : i + 32]), y_train[i : i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
    enc.eval()
    with torch.no_grad():
        return float((logits(test).argmax(-1) == y_test).float().mean())


@pytest.mark.parametrize("conv", ["gcn", "gin"])
def test_ring_vs_tree_needs_the_edges(conv: Any) -> None:
    # same node count and node-feature distribution: without edges a model is at chance. (GAT is
    # left out: its attention averages the neighbours, so it sees degrees only faintly.)
    assert _fit_and_score(conv, use_edges=True) >= 0.95
    assert _fit_and_score(conv, use_edges=False) <= 0.65
