"""Feature-level fusion: pool each modality, concatenate, MLP."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmfuse.models.fusion.base import Fuser
from mmfuse.types import EncoderOutput, FusionOutput


class ConcatFusion(Fuser):
    """Masked mean-pool each modality, concatenate in sorted order with presence flags, then an MLP.

    An absent modality pools to zeros. The 0/1 presence flags go into the MLP too, because a
    zero vector alone cannot tell "absent" from "present with features near zero".

    Args:
        modalities: modality names (concatenated in sorted order).
        d_model: width ``D`` of every encoder's tokens and of ``pooled``.
        hidden: MLP hidden width.
        dropout: dropout after the hidden layer.
    """

    def __init__(
        self, modalities: list[str], d_model: int = 64, hidden: int = 128, dropout: float = 0.1
    ) -> None:
        super().__init__(modalities, d_model)
        n = len(self.modalities)
        self.mlp = nn.Sequential(
            nn.Linear(n * d_model + n, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, d_model),
        )

    def forward(self, encoded: Mapping[str, EncoderOutput], present: Mapping[str, Tensor]) -> FusionOutput:
        """Fuse by concatenation.

        Args:
            encoded: modality -> EncoderOutput, tokens ``(B, T_m, D)``, mask ``(B, T_m)``.
            present: modality -> ``(B,)`` bool.

        Returns:
            FusionOutput with pooled ``(B, D)``, per_modality ``m -> (B, D)``, attention ``{}``.
        """
        inputs = self.effective_inputs(encoded, present)
        per_modality = self.pool_each(inputs)
        ref = per_modality[self.modalities[0]]
        flags = torch.stack([present[m].to(ref.dtype) for m in self.modalities], dim=-1)  # (B, n)
        features = torch.cat([*(per_modality[m] for m in self.modalities), flags], dim=-1)  # (B, n*D + n)
        return FusionOutput(pooled=self.mlp(features), per_modality=per_modality, attention={})
