"""Low-rank multimodal fusion (LMF, Liu et al., ACL 2018): tensor fusion without the tensor."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmfuse.models.fusion.base import Fuser
from mmfuse.types import EncoderOutput, FusionOutput


class LowRankFusion(Fuser):
    """Multiplicative fusion of the pooled modalities through rank-``r`` factors.

    Tensor fusion (TFN, Zadeh et al., EMNLP 2017) appends a 1 to each modality's pooled vector
    ``z_m = [h_m, 1]`` and maps the outer product ``z_1 (x) z_2 (x) ... (x) z_n`` linearly to the
    output: every unimodal, bimodal, ... n-modal interaction term, but a tensor of ``(D + 1)^n``
    entries per sample (and as many weights per output unit), exponential in the number of
    modalities. LMF writes that weight tensor as a sum of ``rank`` outer products of per-modality
    factors, which turns the product into ``sum_r w_r * prod_m (z_m @ W_m[r]) + b``: linear in the
    modalities, same terms, no tensor built. Only this low-rank form is provided.

    An absent modality pools to zeros, so its ``z_m = [0, ..., 0, 1]`` keeps only its constant
    term: the other modalities' terms pass through, scaled by that modality's learnt constant.

    Args:
        modalities: modality names.
        d_model: width ``D`` of every encoder's tokens and of ``pooled``.
        rank: rank ``r`` of the factorisation (LMF found 4 enough on its benchmarks).
        dropout: dropout on each pooled modality before the product.
    """

    def __init__(self, modalities: list[str], d_model: int = 64, rank: int = 4, dropout: float = 0.1) -> None:
        super().__init__(modalities, d_model)
        if rank < 1:
            raise ValueError(f"LowRankFusion: rank={rank} must be >= 1")
        self.factors = nn.ParameterDict(
            {m: nn.Parameter(torch.empty(rank, d_model + 1, d_model)) for m in self.modalities}
        )  # m -> (r, D + 1, D)
        for factor in self.factors.values():
            for r in range(rank):
                nn.init.xavier_normal_(factor.data[r])
        self.rank_weights = nn.Parameter(torch.full((rank,), 1.0 / rank))  # (r,)
        self.bias = nn.Parameter(torch.zeros(d_model))  # (D,)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, encoded: Mapping[str, EncoderOutput], present: Mapping[str, Tensor]) -> FusionOutput:
        """Fuse the pooled modalities multiplicatively.

        Args:
            encoded: modality -> EncoderOutput, tokens ``(B, T_m, D)``, mask ``(B, T_m)``.
            present: modality -> ``(B,)`` bool.

        Returns:
            FusionOutput with pooled ``(B, D)``, per_modality ``m -> (B, D)``, attention ``{}``.
        """
        inputs = self.effective_inputs(encoded, present)
        per_modality = self.pool_each(inputs)
        product: Tensor | None = None
        for m in self.modalities:
            h = self.dropout(per_modality[m])  # (B, D)
            z = torch.cat([h, torch.ones_like(h[:, :1])], dim=-1)  # (B, D + 1)
            term = torch.einsum("bi,rio->rbo", z, self.factors[m])  # (r, B, D)
            product = term if product is None else product * term
        assert product is not None  # a Fuser has at least one modality
        fused = torch.einsum("r,rbo->bo", self.rank_weights, product) + self.bias  # (B, D)
        return FusionOutput(pooled=self.norm(fused), per_modality=per_modality, attention={})
