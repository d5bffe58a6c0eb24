"""Attention bottleneck fusion (MBT, Nagrani et al., NeurIPS 2021)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import torch
from torch import Tensor, nn

from mmfuse.models.fusion.base import Fuser, mean_over_present
from mmfuse.models.fusion.blocks import AttentionBlock, check_heads
from mmfuse.models.masking import masked_mean
from mmfuse.types import EncoderOutput, FusionOutput


class BottleneckFusion(Fuser):
    """Each modality has its own self-attention layers; modalities exchange information only through
    a few shared bottleneck tokens.

    Layers before ``fusion_layer`` see one modality alone. From ``fusion_layer`` on, each modality's
    layer attends over its tokens plus the ``num_bottlenecks`` shared tokens; the bottleneck tokens'
    outputs are then averaged over the modalities present in each sample and passed on. So every
    cross-modal exchange squeezes through ``num_bottlenecks`` tokens per layer (cost linear in
    the modalities, not quadratic in the total tokens). An absent modality writes nothing into the
    bottleneck. ``pooled`` is a linear map of the mean over present modalities of their pooled
    tokens, beside the bottleneck tokens' mean.

    Args:
        modalities: modality names.
        d_model: width ``D`` of every encoder's tokens and of ``pooled``.
        num_bottlenecks: shared bottleneck tokens (MBT uses 4).
        num_layers: self-attention layers per modality.
        fusion_layer: the first layer that reads and writes the bottleneck (0: all of them).
        num_heads: attention heads ``H`` (must divide ``d_model``).
        ff_mult: feed-forward width as a multiple of ``d_model``.
        dropout: dropout on attention weights, residual updates and feed-forward.

    Attention output:
        ``attention[f"{m}->others"]`` is ``(B, H, T_m, sum of T_other)``: with two or more fusion
        layers, the two-hop weight from ``m``'s tokens through the bottleneck to each other modality's
        tokens (``m`` reading the bottleneck in the last layer times each other modality writing it
        in the layer before, averaged as the bottleneck is: attention rollout without residuals).
        Empty with fewer than two fusion layers or one modality.
    """

    def __init__(
        self,
        modalities: list[str],
        d_model: int = 64,
        num_bottlenecks: int = 4,
        num_layers: int = 2,
        fusion_layer: int = 0,
        num_heads: int = 4,
        ff_mult: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(modalities, d_model)
        check_heads("BottleneckFusion", d_model, num_heads)
        if not 0 <= fusion_layer < num_layers or num_bottlenecks < 1:
            raise ValueError(
                f"BottleneckFusion: needs num_bottlenecks >= 1 and 0 <= fusion_layer < num_layers, got "
                f"num_bottlenecks={num_bottlenecks}, fusion_layer={fusion_layer}, num_layers={num_layers}"
            )
        self.fusion_layer = fusion_layer
        self.bottleneck = nn.Parameter(torch.randn(num_bottlenecks, d_model) * 0.02)  # (N_b, D)

        def stack() -> nn.ModuleList:
            blocks = (AttentionBlock(d_model, num_heads, ff_mult, dropout) for _ in range(num_layers))
            return nn.ModuleList(blocks)

        self.layers = nn.ModuleDict({m: stack() for m in self.modalities})
        self.proj = nn.Linear(2 * d_model, d_model)

    def forward(self, encoded: Mapping[str, EncoderOutput], present: Mapping[str, Tensor]) -> FusionOutput:
        """Fuse through the bottleneck.

        Args:
            encoded: modality -> EncoderOutput, tokens ``(B, T_m, D)``, mask ``(B, T_m)``.
            present: modality -> ``(B,)`` bool.

        Returns:
            FusionOutput with pooled ``(B, D)``, per_modality ``m -> (B, D)`` (masked mean of ``m``'s
            output tokens, zeros where absent) and attention ``"m->others"`` (see the class).
        """
        inputs = self.effective_inputs(encoded, present)
        first = inputs[self.modalities[0]].tokens
        B = first.shape[0]
        x = {m: inputs[m].tokens for m in self.modalities}  # (B, T_m, D) each
        z = self.bottleneck.to(first.dtype).expand(B, -1, -1)  # (B, N_b, D)
        N = z.shape[1]
        z_mask = torch.ones(B, N, dtype=torch.bool, device=first.device)
        layers = {m: cast(nn.ModuleList, self.layers[m]) for m in self.modalities}
        anyone = torch.stack([present[m].bool() for m in self.modalities], dim=1).any(dim=1)  # (B,)
        # the last two fusion layers' weights, m -> (B, H, T_m + N_b, T_m + N_b): what the maps need
        history: list[dict[str, Tensor]] = []
        for i in range(len(layers[self.modalities[0]])):
            if i < self.fusion_layer:
                for m in self.modalities:
                    x[m], _ = layers[m][i](x[m], x[m], inputs[m].mask)
                continue
            written: dict[str, Tensor] = {}
            weights: dict[str, Tensor] = {}
            for m in self.modalities:
                T = x[m].shape[1]
                seq, mask = torch.cat([x[m], z], dim=1), torch.cat([inputs[m].mask, z_mask], dim=1)
                seq, weights[m] = layers[m][i](seq, seq, mask)  # (B, T_m + N_b, D)
                x[m], written[m] = seq[:, :T], seq[:, T:]
            # the shared tokens: each present modality's update, averaged; unchanged if none is present
            z = torch.where(anyone[:, None, None], mean_over_present(written, present, self.modalities), z)
            history = [*history[-1:], weights]
        per_modality = {m: masked_mean(x[m], inputs[m].mask) for m in self.modalities}
        fused = mean_over_present(per_modality, present, self.modalities)  # (B, D)
        pooled = self.proj(torch.cat([fused, z.mean(dim=1)], dim=-1))  # (B, D)
        attention = self._two_hop(history, present, N) if len(history) == 2 else {}
        return FusionOutput(pooled=pooled, per_modality=per_modality, attention=attention)

    def _two_hop(
        self, history: list[dict[str, Tensor]], present: Mapping[str, Tensor], N: int
    ) -> dict[str, Tensor]:
        """``"m->others"``: ``m`` reads the bottleneck (last layer) the others wrote (the layer before)."""
        read, wrote = history[-1], history[-2]
        here = torch.stack([present[m].bool() for m in self.modalities], dim=1)  # (B, n)
        share = here.to(read[self.modalities[0]].dtype) / here.sum(dim=1, keepdim=True).clamp(min=1)  # (B, n)
        out = {}
        for m in self.modalities:
            T = read[m].shape[-1] - N
            to_bottleneck = read[m][:, :, :T, T:]  # (B, H, T_m, N_b)
            parts = []
            for j, o in enumerate(self.modalities):
                if o == m:
                    continue
                T_o = wrote[o].shape[-1] - N
                from_o = wrote[o][:, :, T_o:, :T_o] * share[:, j, None, None, None]  # (B, H, N_b, T_o)
                parts.append(to_bottleneck @ from_o)  # (B, H, T_m, T_o)
            if parts:
                out[f"{m}->others"] = torch.cat(parts, dim=-1)  # (B, H, T_m, sum T_others)
        return out
