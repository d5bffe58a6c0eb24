"""MulT-style cross-modal attention fusion (Tsai et al., 2019)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import torch
from torch import Tensor, nn

from mmfuse.models.fusion.base import Fuser
from mmfuse.models.fusion.blocks import AttentionBlock
from mmfuse.models.masking import masked_mean
from mmfuse.types import EncoderOutput, FusionOutput


class CrossModalAttentionFusion(Fuser):
    """Each modality's tokens attend to the other modalities' tokens, then to themselves.

    For each target modality ``m`` (sorted order): tokens plus a learned modality-type embedding
    pass ``num_layers`` cross-attention blocks whose keys are the concatenated tokens of all
    other modalities (sorted order), masked by their token masks and presence; then one
    self-attention block over ``m``'s own tokens; then a masked mean gives ``per_modality[m]``
    (zeros where ``m`` is absent). With a single modality the cross blocks are skipped.
    ``pooled`` is a Linear over the concatenated ``per_modality`` vectors.

    Args:
        modalities: modality names.
        d_model: width ``D`` of every encoder's tokens and of ``pooled``.
        num_heads: attention heads ``H`` (must divide ``d_model``).
        num_layers: cross-attention blocks per target modality.
        ff_mult: feed-forward width as a multiple of ``d_model``.
        dropout: dropout on attention weights, residual updates and feed-forward.

    Attention output:
        ``attention[f"{m}->others"]`` is ``(B, H, T_m, sum of T_other)`` from the last cross block,
        keys ordered as the other modalities in sorted order; masked or absent keys weigh 0.
    """

    def __init__(
        self,
        modalities: list[str],
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 1,
        ff_mult: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(modalities, d_model)
        if d_model % num_heads:
            raise ValueError(
                f"CrossModalAttentionFusion: num_heads={num_heads} must divide d_model={d_model}"
            )
        n = len(self.modalities)
        self.type_embed = nn.Parameter(torch.randn(n, d_model) * 0.02)  # (n, D)
        cross_layers = num_layers if n > 1 else 0

        def block() -> AttentionBlock:
            return AttentionBlock(d_model, num_heads, ff_mult, dropout)

        self.cross = nn.ModuleDict(
            {m: nn.ModuleList(block() for _ in range(cross_layers)) for m in self.modalities}
        )
        self.self_attn = nn.ModuleDict({m: block() for m in self.modalities})
        self.proj = nn.Linear(n * d_model, d_model)

    def forward(self, encoded: Mapping[str, EncoderOutput], present: Mapping[str, Tensor]) -> FusionOutput:
        """Fuse by cross-modal attention.

        Args:
            encoded: modality -> EncoderOutput, tokens ``(B, T_m, D)``, mask ``(B, T_m)``.
            present: modality -> ``(B,)`` bool.

        Returns:
            FusionOutput with pooled ``(B, D)``, per_modality ``m -> (B, D)`` and attention
            ``"m->others" -> (B, H, T_m, sum T_others)`` (empty with one modality).
        """
        inputs = self.effective_inputs(encoded, present)
        tokens = {m: inputs[m].tokens + self.type_embed[i] for i, m in enumerate(self.modalities)}
        per_modality: dict[str, Tensor] = {}
        attention: dict[str, Tensor] = {}
        for m in self.modalities:
            x, mask = tokens[m], inputs[m].mask  # (B, T_m, D), (B, T_m)
            others = [o for o in self.modalities if o != m]
            cross = cast(nn.ModuleList, self.cross[m])
            if len(cross):
                kv = torch.cat([tokens[o] for o in others], dim=1)  # (B, S, D), S = sum T_others
                kv_mask = torch.cat([inputs[o].mask for o in others], dim=1)  # (B, S)
                for layer in cross:
                    x, weights = layer(x, kv, kv_mask)  # weights (B, H, T_m, S)
                attention[f"{m}->others"] = weights
            x, _ = self.self_attn[m](x, x, mask)
            per_modality[m] = masked_mean(x, mask)  # (B, D)
        pooled = self.proj(torch.cat([per_modality[m] for m in self.modalities], dim=-1))  # (B, D)
        return FusionOutput(pooled=pooled, per_modality=per_modality, attention=attention)
