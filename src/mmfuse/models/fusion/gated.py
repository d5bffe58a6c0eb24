"""Gated fusion: a learnt, per-sample weight for each modality's pooled features."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmfuse.models.fusion.base import Fuser
from mmfuse.types import EncoderOutput, FusionOutput


class GatedFusion(Fuser):
    """Masked mean-pool each modality, score it with a small gate, and sum the modalities weighted by
    the softmax of their scores over the modalities present in each sample.

    Cheaper than cross-attention and more adaptive than concatenation: the gate learns, per sample,
    which modality to trust. An absent modality gets weight exactly 0 (its score is masked before
    the softmax). The example of docs/add-an-encoder-or-fuser.md: a fuser used by class path.

    Args:
        modalities: modality names (linked from ``model.encoders``).
        d_model: width ``D`` of every encoder's tokens and of ``pooled``.
        hidden: width of the gate's hidden layer.
        dropout: dropout on the fused features.
    """

    def __init__(
        self, modalities: list[str], d_model: int = 64, hidden: int = 64, dropout: float = 0.1
    ) -> None:
        super().__init__(modalities, d_model)
        self.gate = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, 1))
        self.out = nn.Sequential(nn.LayerNorm(d_model), nn.Dropout(dropout))

    def forward(self, encoded: Mapping[str, EncoderOutput], present: Mapping[str, Tensor]) -> FusionOutput:
        """Fuse by a presence-masked softmax gate over the modalities.

        Args:
            encoded: modality -> EncoderOutput, tokens ``(B, T_m, D)``, mask ``(B, T_m)``.
            present: modality -> ``(B,)`` bool.

        Returns:
            FusionOutput with pooled ``(B, D)``, per_modality ``m -> (B, D)``, attention ``{}``.
        """
        inputs = self.effective_inputs(encoded, present)
        per_modality = self.pool_each(inputs)
        pooled = torch.stack([per_modality[m] for m in self.modalities], dim=1)  # (B, M, D)
        here = torch.stack([present[m].bool() for m in self.modalities], dim=1)  # (B, M)
        scores = self.gate(pooled).squeeze(-1).masked_fill(~here, float("-inf"))  # (B, M)
        # a sample with no modality at all: every score is -inf; weights 0, not NaN
        weights = torch.nan_to_num(scores.softmax(dim=-1), nan=0.0)  # (B, M)
        fused = (weights[:, :, None] * pooled).sum(dim=1)  # (B, D)
        return FusionOutput(pooled=self.out(fused), per_modality=per_modality, attention={})
