"""Accuracy broken down by presence pattern: which modalities each sample had."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from torchmetrics import Metric


def pattern_name(modalities: Sequence[str]) -> str:
    """``["audio", "image"]`` -> ``"audio+image"``; no modality -> ``"none"``."""
    return "+".join(sorted(modalities)) or "none"


class PresenceAccuracy(Metric):
    """Accuracy and sample count per presence pattern (which of the modalities a sample had).

    States are per-pattern sums (``2^M`` patterns for ``M`` modalities), so under DDP they add up
    across processes like any torchmetrics state.

    Args:
        modalities: the modality names; pattern bit ``i`` is ``sorted(modalities)[i]``.
    """

    full_state_update = False
    correct: Tensor
    count: Tensor

    def __init__(self, modalities: Sequence[str]) -> None:
        super().__init__()
        self.modalities = sorted(modalities)
        n = 2 ** len(self.modalities)
        self.add_state("correct", default=torch.zeros(n, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros(n, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor, present: Mapping[str, Tensor]) -> None:
        """Args:
        logits: ``(B, K)``.
        target: ``(B,)`` class index, ``-1`` = unlabelled (ignored).
        present: modality -> ``(B,)`` bool.
        """
        labelled = target >= 0  # (B,)
        pattern = torch.zeros_like(target)
        for i, m in enumerate(self.modalities):
            pattern = pattern | (present[m].long() << i)  # (B,)
        hit = (logits.argmax(dim=-1) == target) & labelled  # (B,)
        n = self.count.numel()
        self.count += torch.bincount(pattern[labelled], minlength=n)
        self.correct += torch.bincount(pattern[hit], minlength=n)

    def compute(self) -> dict[str, Tensor]:
        """``"<pattern>/acc"`` and ``"<pattern>/n"`` for every pattern that occurred."""
        out: dict[str, Tensor] = {}
        for index in torch.nonzero(self.count).flatten().tolist():
            name = pattern_name([m for i, m in enumerate(self.modalities) if index >> i & 1])
            out[f"{name}/acc"] = self.correct[index].float() / self.count[index]
            out[f"{name}/n"] = self.count[index].float()
        return out
