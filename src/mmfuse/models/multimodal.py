"""MultimodalModel: per-modality encoders, a fuser and one head per task, composed. Pure PyTorch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple, cast

from torch import Tensor, nn

from mmfuse.models.fusion.base import Fuser
from mmfuse.models.heads import TaskHead
from mmfuse.models.masking import masked_mean
from mmfuse.types import EncoderOutput, FusionOutput


class ModelOutput(NamedTuple):
    """Attributes:
    logits: task -> ``(B, K)`` class or label logits, or ``(B, 1)`` regression values.
    fused: what the fuser returned (pooled features, per-modality features, attention maps).
    embeddings: modality -> ``(B, D)`` its encoder's tokens, mean-pooled over real tokens, before
        fusion (zeros where the modality is absent): what a contrastive objective reads.
    unimodal: task -> modality -> ``(B, K)``: each modality's own head on its embedding (empty unless
        the model has unimodal heads; a late fuser's per-modality heads are these).
    """

    logits: dict[str, Tensor]
    fused: FusionOutput
    embeddings: dict[str, Tensor]
    unimodal: dict[str, dict[str, Tensor]]


class MultimodalModel(nn.Module):
    """Encode each modality, fuse, and run one head per task on the fused features.

    A fuser with ``decision_level = True`` (late fusion) gets, per task, one head per modality and
    combines their outputs with its own ``combine``; any other fuser gets one head per task on its
    ``pooled`` output.

    Args:
        encoders: modality -> encoder returning :class:`~mmfuse.types.EncoderOutput` of width ``D``.
        fusion: the fuser; its ``modalities`` must be the encoders' names.
        outputs: task -> output width (``K`` classes or labels, 1 for regression). May be empty
            (no head: the model then only encodes and fuses).
        head_hidden: hidden width of each head's MLP (0: linear heads).
        head_dropout: dropout in the heads.
        unimodal_heads: also give each modality a head per task on its own embedding (the late
            fuser's per-modality heads serve), for a loss that trains each encoder as if alone.
    """

    def __init__(
        self,
        encoders: Mapping[str, nn.Module],
        fusion: Fuser,
        outputs: Mapping[str, int],
        head_hidden: int = 0,
        head_dropout: float = 0.0,
        unimodal_heads: bool = False,
    ) -> None:
        super().__init__()
        _check_compatible(encoders, fusion)
        self.encoders = nn.ModuleDict(dict(sorted(encoders.items())))
        self.fusion = fusion

        def head(width: int) -> TaskHead:
            return TaskHead(fusion.out_dim, width, head_hidden, head_dropout)

        # task order is the data's (dict order), not sorted: it is the order of every report
        heads: dict[str, nn.Module] = {}
        for task, width in outputs.items():
            if width < 1:
                raise ValueError(f"task {task!r} has output width {width}: it needs at least one class")
            if fusion.decision_level:
                heads[task] = nn.ModuleDict({m: head(width) for m in self.encoders})  # one per modality
            else:
                heads[task] = head(width)
        self.heads = nn.ModuleDict(heads)
        own = unimodal_heads and not fusion.decision_level  # a late fuser's heads are per modality already
        self.unimodal_heads = nn.ModuleDict(
            {
                t: nn.ModuleDict(
                    {m: TaskHead(fusion.d_model, w, head_hidden, head_dropout) for m in self.encoders}
                )
                for t, w in outputs.items()
            }
            if own
            else {}
        )
        self.has_unimodal = unimodal_heads

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
            per-task outputs ``(B, K)``, the fuser's output and each modality's pooled encoding ``(B, D)``.
        """
        encoded = self.encode(inputs)
        # (B, D) per modality; an absent modality's tokens are all masked out (zeros)
        embeddings = {
            m: masked_mean(e.tokens, e.mask & present[m].bool()[:, None]) for m, e in encoded.items()
        }
        fused = self.fusion(encoded, present)
        logits: dict[str, Tensor] = {}
        unimodal: dict[str, dict[str, Tensor]] = {}
        for task, head in self.heads.items():
            if self.fusion.decision_level:
                per_modality = {m: h(fused.per_modality[m]) for m, h in cast(nn.ModuleDict, head).items()}
                logits[task] = self.fusion.combine(per_modality, present)
                if self.has_unimodal:
                    unimodal[task] = per_modality
            else:
                logits[task] = head(fused.pooled)  # (B, K)
        for task, heads in self.unimodal_heads.items():
            unimodal[task] = {m: h(embeddings[m]) for m, h in cast(nn.ModuleDict, heads).items()}
        return ModelOutput(logits=logits, fused=fused, embeddings=embeddings, unimodal=unimodal)


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
