"""Kipf & Welling's GCN on the Planetoid citation graphs, built from mmfuse's ``GCNLayer``.

    python benchmarks/gcn_citation.py --root data/planetoid                     # Cora, CiteSeer, PubMed
    python benchmarks/gcn_citation.py --root data/planetoid --datasets Cora --runs 100

Needs PyTorch Geometric (``pip install -e ".[graph]"``) and the data: PyG's ``Planetoid`` downloads
it into ``--root`` on first use (internet needed once), or finds the files already there
(``<root>/<Name>/raw/ind.<name>.*``, copied from a machine that has them).

The setup is the paper's (Kipf & Welling, ICLR 2017, Section 5 and Kipf's reference code): the
public Planetoid split (20 labelled nodes per class, 500 validation, 1000 test nodes), row-normalised
features, two GCN layers with 16 hidden units and ReLU between them, dropout 0.5 on the input of
both layers, Glorot initialisation, no bias (as in the reference code; ``--bias`` adds one), Adam
with learning rate 0.01, L2 regularisation 5e-4 on the first layer's weights only, at most 200
epochs with early stopping (window 10: stop once the validation loss exceeds the mean of the
previous 10), and the test accuracy of the final model. The paper reports the mean of 100 runs with
random initialisations: Cora 81.5, CiteSeer 70.3, PubMed 79.0 (%).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmfuse.models.encoders.gnn import GCNLayer

PAPER = {"Cora": 81.5, "CiteSeer": 70.3, "PubMed": 79.0}  # test accuracy, %, Table 2


class GCN(nn.Module):
    """The paper's two-layer model: ``softmax(Â ReLU(Â X W0) W1)`` with dropout before each layer.

    Args:
        in_dim: node features.
        hidden: hidden units.
        num_classes: output classes.
        dropout: dropout rate on the input of each layer.
        bias: add a bias after each propagation (the reference code has none).
    """

    def __init__(self, in_dim: int, hidden: int, num_classes: int, dropout: float, bias: bool) -> None:
        super().__init__()
        self.conv1 = GCNLayer(in_dim, hidden, bias=bias)
        self.conv2 = GCNLayer(hidden, num_classes, bias=bias)
        self.dropout = dropout

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        x = F.dropout(x, self.dropout, self.training)
        x = F.relu(self.conv1(x, edge_index))  # (N, hidden)
        x = F.dropout(x, self.dropout, self.training)
        return self.conv2(x, edge_index)  # (N, K) logits


@dataclass
class Result:
    """Attributes:
    test_acc: test accuracy of the final model, in [0, 1].
    val_acc: validation accuracy of the final model.
    epochs: epochs trained (fewer than the maximum when early stopping fired).
    """

    test_acc: float
    val_acc: float
    epochs: int


def train_gcn(
    x: Tensor,
    edge_index: Tensor,
    y: Tensor,
    train_mask: Tensor,
    val_mask: Tensor,
    test_mask: Tensor,
    *,
    hidden: int = 16,
    dropout: float = 0.5,
    lr: float = 0.01,
    weight_decay: float = 5e-4,
    epochs: int = 200,
    patience: int = 10,
    bias: bool = False,
    seed: int = 0,
) -> Result:
    """Train the paper's GCN full-batch on one graph (semi-supervised node classification).

    Args:
        x: ``(N, F)`` node features (row-normalised for the paper's setup).
        edge_index: ``(2, E)`` both directions of every undirected edge.
        y: ``(N,)`` class of every node.
        train_mask: ``(N,)`` bool, the labelled nodes.
        val_mask: ``(N,)`` bool, the validation nodes (early stopping).
        test_mask: ``(N,)`` bool, the test nodes.
        hidden: hidden units.
        dropout: dropout rate.
        lr: Adam learning rate.
        weight_decay: L2 factor on the first layer's weights (``wd/2 * ||W0||^2`` in the loss, as
            ``weight_decay * tf.nn.l2_loss`` in the reference code).
        epochs: maximum epochs.
        patience: early-stopping window on the validation loss; 0 trains all ``epochs``.
        bias: add a bias to each layer.
        seed: seeds the initialisation and dropout.

    Returns:
        the final model's test and validation accuracy and the number of epochs trained.
    """
    torch.manual_seed(seed)
    num_classes = int(y.max()) + 1
    model = GCN(x.shape[1], hidden, num_classes, dropout, bias).to(x.device)
    # torch's weight_decay adds wd * W to the gradient, i.e. wd/2 * ||W||^2 in the loss
    optimizer = torch.optim.Adam(
        [
            {"params": model.conv1.parameters(), "weight_decay": weight_decay},
            {"params": model.conv2.parameters(), "weight_decay": 0.0},
        ],
        lr=lr,
    )

    def l2() -> Tensor:  # the reference code's validation loss includes the L2 term
        return 0.5 * weight_decay * model.conv1.lin.weight.pow(2).sum()

    val_losses: list[float] = []
    epoch = 0
    for epoch in range(1, epochs + 1):
        model.train()
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x, edge_index)[train_mask], y[train_mask])
        loss.backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            val_loss = F.cross_entropy(model(x, edge_index)[val_mask], y[val_mask]) + l2()
        val_losses.append(float(val_loss))
        if (
            patience
            and epoch > patience
            and val_losses[-1] > statistics.fmean(val_losses[-patience - 1 : -1])
        ):
            break
    model.eval()
    with torch.no_grad():
        pred = model(x, edge_index).argmax(dim=-1)  # (N,)
    return Result(
        test_acc=float((pred[test_mask] == y[test_mask]).float().mean()),
        val_acc=float((pred[val_mask] == y[val_mask]).float().mean()),
        epochs=epoch,
    )


def load_planetoid(root: str, name: str) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``x, edge_index, y, train_mask, val_mask, test_mask`` of the public split, features row-normalised."""
    from torch_geometric.datasets import Planetoid
    from torch_geometric.transforms import NormalizeFeatures

    data = Planetoid(root, name, split="public", transform=NormalizeFeatures())[0]
    return data.x, data.edge_index, data.y, data.train_mask, data.val_mask, data.test_mask


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--root", default="data/planetoid", help="where Planetoid finds or downloads the data"
    )
    parser.add_argument("--datasets", nargs="+", default=list(PAPER), choices=list(PAPER))
    parser.add_argument("--runs", type=int, default=10, help="random initialisations per dataset")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=10, help="early-stopping window; 0: none")
    parser.add_argument("--bias", action="store_true", help="add a bias to both layers")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    results: dict[str, list[float]] = {}
    print("| dataset | test accuracy (mean ± std over runs) | paper | epochs (mean) | seconds per run |")
    print("|---|---|---|---|---|")
    for name in args.datasets:
        x, edge_index, y, train, val, test = (t.to(args.device) for t in load_planetoid(args.root, name))
        accs, epochs = [], []
        start = time.perf_counter()
        for run in range(args.runs):
            r = train_gcn(
                x,
                edge_index,
                y,
                train,
                val,
                test,
                epochs=args.epochs,
                patience=args.patience,
                bias=args.bias,
                seed=run,
            )
            accs.append(100 * r.test_acc)
            epochs.append(r.epochs)
        seconds = (time.perf_counter() - start) / args.runs
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(
            f"| {name} | {statistics.fmean(accs):.1f} ± {std:.1f} | {PAPER[name]:.1f} "
            f"| {statistics.fmean(epochs):.0f} | {seconds:.2f} |",
            flush=True,
        )
        results[name] = accs
    return results


if __name__ == "__main__":
    main()
