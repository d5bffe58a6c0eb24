"""What every fuser shares: the modality list, input validation, presence-aware masks and pooling."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor, nn

from mmfuse.models.masking import masked_mean, zero_masked
from mmfuse.types import EncoderOutput, FusionOutput


class Fuser(nn.Module):
    """Base class of fusers: ``forward(encoded, present) -> FusionOutput``.

    Subclasses call :meth:`effective_inputs` first; it validates the inputs and folds presence
    into each token mask (``mask & present[:, None]``), so an absent modality's tokens are
    masked everywhere and can influence nothing.

    Args:
        modalities: the modality names this fuser expects; kept sorted.
        d_model: width ``D`` of every encoder's tokens.

    Attributes:
        modalities: sorted modality names; the order of every concatenation.
        d_model: token width ``D``.
        out_dim: width of ``FusionOutput.pooled``.
        decision_level: True when the model should build one head per modality and call
            ``combine`` on their logits instead of reading ``pooled`` with one head.
    """

    decision_level: ClassVar[bool] = False

    def __init__(self, modalities: list[str], d_model: int) -> None:
        super().__init__()
        if not modalities:
            raise ValueError(f"{type(self).__name__}: `modalities` must name at least one modality")
        if len(set(modalities)) != len(modalities):
            raise ValueError(f"{type(self).__name__}: duplicate names in modalities={modalities}")
        self.modalities = sorted(modalities)
        self.d_model = d_model
        self.out_dim = d_model

    def check_keys(self, got: Mapping[str, object], what: str) -> None:
        """Raise ValueError unless ``got`` has exactly this fuser's modalities as keys."""
        if sorted(got) != self.modalities:
            raise ValueError(
                f"{type(self).__name__}: {what} has modalities {sorted(got)}, expected {self.modalities}"
            )

    def effective_inputs(
        self, encoded: Mapping[str, EncoderOutput], present: Mapping[str, Tensor]
    ) -> dict[str, EncoderOutput]:
        """Validate inputs; return each modality's tokens with mask ``mask & present``, masked tokens zeroed.

        Zeroing is hygiene, not masking: masks still decide what is attended and pooled, but an
        absent modality's garbage (even inf/NaN) never enters arithmetic.

        Args:
            encoded: modality -> EncoderOutput with tokens ``(B, T_m, D)``, mask ``(B, T_m)``.
            present: modality -> ``(B,)`` bool, False = the sample has no value for it.

        Returns:
            modality -> EncoderOutput, in sorted modality order.
        """
        self.check_keys(encoded, "`encoded`")
        self.check_keys(present, "`present`")
        out: dict[str, EncoderOutput] = {}
        for m in self.modalities:
            tokens, mask = encoded[m]
            B, T, D = tokens.shape
            if self.d_model != D:
                raise ValueError(f"{type(self).__name__}: {m} tokens have width {D}, expected {self.d_model}")
            if mask.shape != (B, T) or present[m].shape != (B,):
                raise ValueError(
                    f"{type(self).__name__}: {m} mask {tuple(mask.shape)} / present "
                    f"{tuple(present[m].shape)} do not match tokens {(B, T, D)}"
                )
            eff = mask.bool() & present[m].bool()[:, None]  # (B, T_m)
            out[m] = EncoderOutput(tokens=zero_masked(tokens, eff), mask=eff)
        return out

    def pool_each(self, inputs: Mapping[str, EncoderOutput]) -> dict[str, Tensor]:
        """Each modality's masked mean over its real tokens, in sorted order.

        Args:
            inputs: modality -> EncoderOutput, as :meth:`effective_inputs` returns it.

        Returns:
            modality -> ``(B, D)``; zeros where the modality is absent or has no real token.
        """
        return {m: masked_mean(inputs[m].tokens, inputs[m].mask) for m in self.modalities}

    def forward(self, encoded: Mapping[str, EncoderOutput], present: Mapping[str, Tensor]) -> FusionOutput:
        """Fuse the encoded modalities; see the subclass."""
        raise NotImplementedError

    def combine(self, logits: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> Tensor:
        """Decision-level fusers (``decision_level = True``) merge per-modality logits ``(B, K)`` here."""
        raise NotImplementedError(f"{type(self).__name__} fuses features, not logits: read `pooled`")


def mean_over_present(
    values: Mapping[str, Tensor], present: Mapping[str, Tensor], order: list[str]
) -> Tensor:
    """``(B, ...)`` mean of ``values[m]`` over the modalities present in each row; zeros where none is.

    Args:
        values: modality -> ``(B, ...)`` per-modality values (features or logits).
        present: modality -> ``(B,)`` bool.
        order: the modalities to average, in a fixed order.
    """
    stacked = torch.stack([values[m] for m in order], dim=1)  # (B, n, ...)
    weight = torch.stack([present[m].bool() for m in order], dim=1).to(stacked.dtype)  # (B, n)
    weight = weight.reshape(*weight.shape, *([1] * (stacked.dim() - 2)))  # (B, n, 1, ...)
    # where, not multiply: an absent modality's head may still emit inf/NaN on placeholder input
    summed = torch.where(weight > 0, stacked, torch.zeros_like(stacked)).sum(dim=1)
    return summed / weight.sum(dim=1).clamp(min=1)
