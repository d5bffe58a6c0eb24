"""Perceiver-style latent fusion (Jaegle et al., 2021): a few latents read every modality's tokens."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import torch
from torch import Tensor, nn

from mmfuse.models.fusion.base import Fuser
from mmfuse.models.fusion.blocks import AttentionBlock, check_heads
from mmfuse.types import EncoderOutput, FusionOutput


class PerceiverFusion(Fuser):
    """A fixed set of learnt latents cross-attends to the tokens of all modalities, then self-attends.

    The keys are every modality's tokens (plus a learnt type embedding per modality), concatenated
    in sorted order and masked by padding and presence. Cost is linear in the total token count
    (``num_latents`` queries), so long sequences (audio frames, image patches) stay cheap. Each of
    ``num_layers`` layers is one cross-attention block then ``num_self_layers`` self-attention
    blocks over the latents; ``pooled`` is the latents' mean.

    Args:
        modalities: modality names.
        d_model: width ``D`` of every encoder's tokens, of the latents and of ``pooled``.
        num_latents: learnt latent tokens ``N``.
        num_layers: cross-attention reads of the tokens (each followed by the self-attention blocks).
        num_self_layers: self-attention blocks over the latents after each read.
        num_heads: attention heads ``H`` (must divide ``d_model``).
        ff_mult: feed-forward width as a multiple of ``d_model``.
        dropout: dropout on attention weights, residual updates and feed-forward.

    Attention output:
        ``attention["latents->tokens"]`` is ``(B, H, N, sum of T_m)`` from the last read, keys in
        sorted modality order; masked or absent keys weigh 0. The W&B callback draws it as one map per
        modality, ``attention/latents_to_<m>`` (:mod:`mmfuse.lit.wandb.attention_maps`).
    """

    def __init__(
        self,
        modalities: list[str],
        d_model: int = 64,
        num_latents: int = 16,
        num_layers: int = 1,
        num_self_layers: int = 1,
        num_heads: int = 4,
        ff_mult: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(modalities, d_model)
        check_heads("PerceiverFusion", d_model, num_heads)
        if num_latents < 1 or num_layers < 1:
            raise ValueError(
                f"PerceiverFusion: num_latents={num_latents} and num_layers={num_layers} must be >= 1"
            )

        def block() -> AttentionBlock:
            return AttentionBlock(d_model, num_heads, ff_mult, dropout)

        self.type_embed = nn.Parameter(torch.randn(len(self.modalities), d_model) * 0.02)  # (n, D)
        self.latents = nn.Parameter(torch.randn(num_latents, d_model) * 0.02)  # (N, D)
        self.cross = nn.ModuleList(block() for _ in range(num_layers))
        self.self_attn = nn.ModuleList(
            nn.ModuleList(block() for _ in range(num_self_layers)) for _ in range(num_layers)
        )

    def forward(self, encoded: Mapping[str, EncoderOutput], present: Mapping[str, Tensor]) -> FusionOutput:
        """Fuse into the latents.

        Args:
            encoded: modality -> EncoderOutput, tokens ``(B, T_m, D)``, mask ``(B, T_m)``.
            present: modality -> ``(B,)`` bool.

        Returns:
            FusionOutput with pooled ``(B, D)``, per_modality ``m -> (B, D)`` (the masked mean of the
            encoder's tokens: the latents mix modalities) and attention ``"latents->tokens"``.
        """
        inputs = self.effective_inputs(encoded, present)
        kv = torch.cat([inputs[m].tokens + self.type_embed[i] for i, m in enumerate(self.modalities)], dim=1)
        kv_mask = torch.cat([inputs[m].mask for m in self.modalities], dim=1)  # (B, S)
        B = kv.shape[0]
        z = self.latents.to(kv.dtype).expand(B, -1, -1)  # (B, N, D)
        z_mask = torch.ones(z.shape[:2], dtype=torch.bool, device=kv.device)  # (B, N)
        for read, thinks in zip(self.cross, self.self_attn, strict=True):
            z, weights = read(z, kv, kv_mask)  # (B, N, D), (B, H, N, S)
            for block in cast(nn.ModuleList, thinks):
                z, _ = block(z, z, z_mask)
        return FusionOutput(
            pooled=z.mean(dim=1),
            per_modality=self.pool_each(inputs),
            attention={"latents->tokens": weights},
        )
