"""Fusers: ``forward(encoded, present) -> FusionOutput``; absent modalities influence nothing."""

from mmfuse.models.fusion.base import Fuser
from mmfuse.models.fusion.concat import ConcatFusion
from mmfuse.models.fusion.cross_attention import CrossModalAttentionFusion
from mmfuse.models.fusion.late import LateFusion

__all__ = ["ConcatFusion", "CrossModalAttentionFusion", "Fuser", "LateFusion"]
