"""An MLP over a vector of tabular features: one token per sample."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmfuse.types import EncoderOutput


class TabularMLP(nn.Module):
    """Encodes ``(B, F)`` feature vectors into one token each: ``EncoderOutput`` with ``T = 1``.

    A pooled-only encoder: the fusers treat its single token like any other modality's tokens
    (cross-modal attention attends to it, pooling returns it).

    Args:
        in_features: ``F``, the number of features (checked against the data's ``num_features``).
        d_model: output width ``D``, the fuser's width.
        hidden: width of the hidden layers.
        num_layers: hidden layers (0: one linear map from ``F`` to ``D``).
        dropout: dropout after each hidden layer.
    """

    def __init__(
        self, in_features: int, d_model: int = 64, hidden: int = 64, num_layers: int = 1, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.d_model = d_model
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout)]
            width = hidden
        layers.append(nn.Linear(width, d_model))
        self.mlp = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, features: Tensor) -> EncoderOutput:
        """Encode a batch of feature vectors.

        Args:
            features: ``(B, F)`` float.

        Returns:
            EncoderOutput with tokens ``(B, 1, D)`` and mask ``(B, 1)``, all True (absence is the
            fuser's business, through ``present``).
        """
        B, F = features.shape
        if self.in_features != F:
            raise ValueError(f"TabularMLP expects features (B, {self.in_features}), got {(B, F)}")
        tokens = self.norm(self.mlp(features))[:, None, :]  # (B, 1, D)
        return EncoderOutput(tokens=tokens, mask=torch.ones(B, 1, dtype=torch.bool, device=features.device))
