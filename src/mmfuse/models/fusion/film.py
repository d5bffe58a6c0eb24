"""FiLM (Perez et al., AAAI 2018): one modality modulates the others' tokens, feature by feature."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import torch
from torch import Tensor, nn

from mmfuse.models.fusion.base import Fuser
from mmfuse.models.masking import masked_mean
from mmfuse.types import EncoderOutput, FusionOutput


class _FiLMBlock(nn.Module):
    """Perez et al.'s residual block with tokens for feature maps: Linear, LayerNorm, FiLM, GELU, + input."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.linear = nn.Linear(d_model, d_model)
        # no affine part: FiLM's gamma and beta take its place
        self.norm = nn.LayerNorm(d_model, elementwise_affine=False)
        self.act = nn.GELU()

    def forward(self, x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        """``x (B, T, D)`` modulated by ``gamma, beta (B, D)`` per feature -> ``(B, T, D)``."""
        h = self.norm(self.linear(x))
        return x + self.act((1 + gamma[:, None, :]) * h + beta[:, None, :])


class FiLMFusion(Fuser):
    """Feature-wise linear modulation: the ``conditioning`` modality sets a scale and shift for every
    feature of every other modality's tokens.

    The conditioning modality is mean-pooled over its real tokens; a linear map per target modality
    turns it into ``gamma, beta (B, D)``, and each target token passes ``num_blocks`` residual
    blocks ``x + GELU((1 + gamma) * LayerNorm(W x) + beta)``. Where the conditioning modality is
    absent, ``gamma = beta = 0``: the targets pass unmodulated. ``pooled`` is a linear map of all
    modalities' pooled features (the conditioning one too) and their 0/1 presence flags.

    Args:
        modalities: modality names; at least two.
        d_model: width ``D`` of every encoder's tokens and of ``pooled``.
        conditioning: the modality that modulates the others (e.g. text modulating image, as in
            visual question answering); must be one of ``modalities``.
        num_blocks: FiLM blocks per target modality.
        dropout: dropout on the pooled features.
    """

    def __init__(
        self,
        modalities: list[str],
        d_model: int = 64,
        conditioning: str = "text",
        num_blocks: int = 1,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(modalities, d_model)
        if conditioning not in self.modalities or len(self.modalities) < 2:
            raise ValueError(
                f"FiLMFusion: conditioning={conditioning!r} must be one of the modalities {self.modalities}, "
                "and another modality must be there to modulate"
            )
        self.conditioning = conditioning
        self.targets = [m for m in self.modalities if m != conditioning]
        # one (gamma, beta) per block of each target: (B, D) -> (B, num_blocks * 2D)
        width = 2 * num_blocks * d_model
        self.generator = nn.ModuleDict({m: nn.Linear(d_model, width) for m in self.targets})
        self.blocks = nn.ModuleDict(
            {m: nn.ModuleList(_FiLMBlock(d_model) for _ in range(num_blocks)) for m in self.targets}
        )
        n = len(self.modalities)
        self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear(n * d_model + n, d_model))

    def forward(self, encoded: Mapping[str, EncoderOutput], present: Mapping[str, Tensor]) -> FusionOutput:
        """Modulate the targets by the conditioning modality, pool, combine.

        Args:
            encoded: modality -> EncoderOutput, tokens ``(B, T_m, D)``, mask ``(B, T_m)``.
            present: modality -> ``(B,)`` bool.

        Returns:
            FusionOutput with pooled ``(B, D)``, per_modality ``m -> (B, D)`` (targets: after
            modulation; zeros where absent), attention ``{}``.
        """
        inputs = self.effective_inputs(encoded, present)
        c = self.conditioning
        condition = masked_mean(inputs[c].tokens, inputs[c].mask)  # (B, D)
        on = present[c].to(condition.dtype)[:, None]  # (B, 1): no conditioning, no modulation
        per_modality = {c: condition}
        for m in self.targets:
            x, mask = inputs[m]
            blocks = cast(nn.ModuleList, self.blocks[m])
            films = (self.generator[m](condition) * on).chunk(2 * len(blocks), dim=-1)  # (B, D) each
            for k, block in enumerate(blocks):
                x = block(x, films[2 * k], films[2 * k + 1])  # (B, T_m, D)
            per_modality[m] = masked_mean(x, mask)
        per_modality = {m: per_modality[m] for m in self.modalities}
        flags = torch.stack([present[m].to(condition.dtype) for m in self.modalities], dim=-1)  # (B, n)
        pooled = self.out(torch.cat([*per_modality.values(), flags], dim=-1))  # (B, D)
        return FusionOutput(pooled=pooled, per_modality=per_modality, attention={})
