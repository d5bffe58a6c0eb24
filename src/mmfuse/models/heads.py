"""Task heads: read the fused representation, return logits (or regression values)."""

from __future__ import annotations

from torch import Tensor, nn


class TaskHead(nn.Module):
    """A linear layer, or a one-hidden-layer MLP, from features to one task's outputs: class or label
    logits, or a regression value (``num_classes=1``).

    Args:
        in_dim: width of the input features.
        num_classes: output width ``K`` (classes, labels, or 1 for regression).
        hidden: width of the hidden layer; 0 for a single linear layer.
        dropout: dropout before each linear layer.
    """

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        if hidden > 0:
            self.net: nn.Module = nn.Sequential(
                nn.Dropout(dropout),
                nn.Linear(in_dim, hidden),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, num_classes),
            )
        else:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, num_classes))

    def forward(self, features: Tensor) -> Tensor:
        """``(B, in_dim)`` -> ``(B, K)`` logits."""
        return self.net(features)
