"""Decision-level (late) fusion: one head per modality, logits averaged over present modalities."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from torch import Tensor

from mmfuse.models.fusion.base import Fuser, mean_over_present
from mmfuse.types import EncoderOutput, FusionOutput


class LateFusion(Fuser):
    """Decision-level fusion: the model builds one head per modality and averages their logits.

    :meth:`forward` gives each modality's masked mean (``per_modality``), which the per-modality
    heads read; :meth:`combine` averages the heads' logits over present modalities only. For
    convenience ``pooled`` is the mean of ``per_modality`` over present modalities. A sample
    with no modality present gets zeros. No parameters: the heads live in the model.

    Args:
        modalities: modality names.
        d_model: width ``D`` of every encoder's tokens and of ``pooled``.
    """

    decision_level: ClassVar[bool] = True

    def __init__(self, modalities: list[str], d_model: int = 64) -> None:
        super().__init__(modalities, d_model)

    def forward(self, encoded: Mapping[str, EncoderOutput], present: Mapping[str, Tensor]) -> FusionOutput:
        """Pool each modality.

        Args:
            encoded: modality -> EncoderOutput, tokens ``(B, T_m, D)``, mask ``(B, T_m)``.
            present: modality -> ``(B,)`` bool.

        Returns:
            FusionOutput with pooled ``(B, D)``, per_modality ``m -> (B, D)``, attention ``{}``.
        """
        inputs = self.effective_inputs(encoded, present)
        per_modality = self.pool_each(inputs)
        pooled = mean_over_present(per_modality, present, self.modalities)
        return FusionOutput(pooled=pooled, per_modality=per_modality, attention={})

    def combine(self, logits: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> Tensor:
        """Average per-modality logits over the modalities present in each sample.

        Args:
            logits: modality -> ``(B, K)`` logits of that modality's head.
            present: modality -> ``(B,)`` bool.

        Returns:
            ``(B, K)`` averaged logits (zeros for a sample with no modality present).
        """
        self.check_keys(logits, "`logits`")
        self.check_keys(present, "`present`")
        return mean_over_present(logits, present, self.modalities)
