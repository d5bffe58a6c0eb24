"""Early (single-stream) fusion: one transformer over every modality's tokens (VisualBERT/ViLT-style)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmfuse.models.fusion.base import Fuser
from mmfuse.models.fusion.blocks import AttentionBlock, check_heads, modality_to_others
from mmfuse.models.masking import masked_mean
from mmfuse.types import EncoderOutput, FusionOutput


class EarlyFusion(Fuser):
    """A learnt [CLS] token and every modality's tokens, concatenated into one sequence, pass
    ``num_layers`` self-attention blocks; ``pooled`` is the [CLS] token's output.

    Each token gets its modality's learnt type embedding (the encoders already added positions), so
    attention can tell an image token from a text token. Padding and absent modalities are masked
    keys: they are never attended, and the [CLS] token always has a key (itself). Every token can
    attend to every other from the first layer on, at cost quadratic in the total token count.

    Args:
        modalities: modality names (concatenated in sorted order).
        d_model: width ``D`` of every encoder's tokens and of ``pooled``.
        num_heads: attention heads ``H`` (must divide ``d_model``).
        num_layers: self-attention blocks over the joint sequence.
        ff_mult: feed-forward width as a multiple of ``d_model``.
        dropout: dropout on attention weights, residual updates and feed-forward.

    Attention output:
        ``attention[f"{m}->others"]`` is ``(B, H, T_m, sum of T_other)`` from the last block: how
        much ``m``'s tokens attend to each other modality's tokens (their rows also attend to
        ``m`` itself and [CLS], left out, so a row sums to at most 1).
    """

    def __init__(
        self,
        modalities: list[str],
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        ff_mult: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(modalities, d_model)
        check_heads("EarlyFusion", d_model, num_heads)
        if num_layers < 1:
            raise ValueError(f"EarlyFusion: num_layers={num_layers}, needs at least 1")
        self.type_embed = nn.Parameter(torch.randn(len(self.modalities), d_model) * 0.02)  # (n, D)
        self.cls = nn.Parameter(torch.randn(d_model) * 0.02)  # (D,)
        self.layers = nn.ModuleList(
            AttentionBlock(d_model, num_heads, ff_mult, dropout) for _ in range(num_layers)
        )

    def forward(self, encoded: Mapping[str, EncoderOutput], present: Mapping[str, Tensor]) -> FusionOutput:
        """Fuse in one joint sequence.

        Args:
            encoded: modality -> EncoderOutput, tokens ``(B, T_m, D)``, mask ``(B, T_m)``.
            present: modality -> ``(B,)`` bool.

        Returns:
            FusionOutput with pooled ``(B, D)`` ([CLS]), per_modality ``m -> (B, D)`` (masked mean of
            ``m``'s output tokens, zeros where absent) and attention ``"m->others"``.
        """
        inputs = self.effective_inputs(encoded, present)
        first = inputs[self.modalities[0]].tokens
        B, D = first.shape[0], self.d_model
        sizes = {m: inputs[m].tokens.shape[1] for m in self.modalities}
        cls = self.cls.to(first.dtype).expand(B, 1, D)  # (B, 1, D)
        typed = [inputs[m].tokens + self.type_embed[i] for i, m in enumerate(self.modalities)]
        x = torch.cat([cls, *typed], dim=1)  # (B, 1 + S, D), S = sum of T_m
        cls_mask = torch.ones(B, 1, dtype=torch.bool, device=first.device)
        mask = torch.cat([cls_mask, *(inputs[m].mask for m in self.modalities)], dim=1)  # (B, 1 + S)
        for layer in self.layers:
            x, weights = layer(x, x, mask)  # (B, 1 + S, D), (B, H, 1 + S, 1 + S)
        parts = dict(zip(self.modalities, x[:, 1:].split(list(sizes.values()), dim=1), strict=True))
        per_modality = {m: masked_mean(parts[m], inputs[m].mask) for m in self.modalities}  # (B, D) each
        attention = modality_to_others(weights, sizes, offset=1)  # from the last block
        return FusionOutput(pooled=x[:, 0], per_modality=per_modality, attention=attention)
