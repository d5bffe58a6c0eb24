"""Fusers: ``forward(encoded, present) -> FusionOutput``; absent modalities influence nothing."""

from mmfuse.models.fusion.base import Fuser
from mmfuse.models.fusion.bottleneck import BottleneckFusion
from mmfuse.models.fusion.concat import ConcatFusion
from mmfuse.models.fusion.cross_attention import CrossModalAttentionFusion
from mmfuse.models.fusion.early import EarlyFusion
from mmfuse.models.fusion.film import FiLMFusion
from mmfuse.models.fusion.gated import GatedFusion
from mmfuse.models.fusion.late import LateFusion
from mmfuse.models.fusion.low_rank import LowRankFusion
from mmfuse.models.fusion.perceiver import PerceiverFusion

__all__ = [
    "BottleneckFusion",
    "ConcatFusion",
    "CrossModalAttentionFusion",
    "EarlyFusion",
    "FiLMFusion",
    "Fuser",
    "GatedFusion",
    "LateFusion",
    "LowRankFusion",
    "PerceiverFusion",
]
