"""MultimodalModel: per-modality encoders, a fuser and task heads, composed. Pure PyTorch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from torch import Tensor, nn

from mmfuse.models.fusion.base import Fuser
from mmfuse.models.heads import ClassificationHead
from mmfuse.types import EncoderOutput, FusionOutput


class ModelOutput(NamedTuple):
    """Attributes:
    logits: ``(B, K)`` class logits.
    fused: what the fuser returned (pooled features, per-modality features, attention maps).
    """

    logits: Tensor
    fused: FusionOutput


class MultimodalModel(nn.Module):
    """Encode each modality, fuse, classify.

    A fuser with ``decision_level = True`` (late fusion) gets one head per modality and combines
    their logits with its own ``combine``; any other fuser gets one head on its ``pooled`` output.

    Args:
        encoders: modality -> encoder returning :class:`~mmfuse.types.EncoderOutput` of width ``D``.
        fusion: the fuser; its ``modalities`` must be the encoders' names.
        num_classes: number of classes ``K``.
        head_hidden: hidden width of the head MLP (0: linear head).
        head_dropout: dropout in the head.
    """

    def __init__(
        self,
        encoders: Mapping[str, nn.Module],
        fusion: Fuser,
        num_classes: int,
        head_hidden: int = 0,
        head_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _check_compatible(encoders, fusion)
        self.encoders = nn.ModuleDict(dict(sorted(encoders.items())))
        self.fusion = fusion
        if fusion.decision_level:
            self.heads = nn.ModuleDict(
                {
                    m: ClassificationHead(fusion.out_dim, num_classes, head_hidden, head_dropout)
                    for m in self.encoders
                }
            )
        else:
            self.head = ClassificationHead(fusion.out_dim, num_classes, head_hidden, head_dropout)

    def encode(self, inputs: Mapping[str, Mapping[str, Tensor]]) -> dict[str, EncoderOutput]:
        """Run every encoder on its own inputs (every encoder runs, present or not: a fixed graph for DDP)."""
        return {m: encoder(**inputs[m]) for m, encoder in self.encoders.items()}

    def forward(
        self, inputs: Mapping[str, Mapping[str, Tensor]], present: Mapping[str, Tensor]
    ) -> ModelOutput:
        """Args:
            inputs: modality -> that encoder's keyword arguments.
            present: modality -> ``(B,)`` bool.

        Returns:
            logits ``(B, K)`` and the fuser's output.
        """
        fused = self.fusion(self.encode(inputs), present)
        if self.fusion.decision_level:
            per_modality = {m: head(fused.per_modality[m]) for m, head in self.heads.items()}
            logits = self.fusion.combine(per_modality, present)
        else:
            logits = self.head(fused.pooled)
        return ModelOutput(logits=logits, fused=fused)


def _check_compatible(encoders: Mapping[str, nn.Module], fusion: Fuser) -> None:
    """Fail at construction, with the config keys to fix, rather than with a shape error mid-step."""
    names = sorted(encoders)
    if fusion.modalities != names:
        raise ValueError(
            f"the fuser is set up for modalities {fusion.modalities} but the encoders are {names}"
        )
    for m, encoder in encoders.items():
        d = getattr(encoder, "d_model", None)
        if d is not None and d != fusion.d_model:
            raise ValueError(
                f"encoder {m!r} has d_model={d} but the fuser has d_model={fusion.d_model}: "
                "every encoder must output the fuser's width"
            )
