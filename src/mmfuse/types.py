"""The few types everything else leans on.

Shape letters used in docstrings and ``# (B, T, D)`` comments across the project:

- ``B`` batch size
- ``T`` tokens of one modality (``T_m`` when several modalities are in play)
- ``D`` model width, shared by every encoder's output and the fuser
- ``H`` attention heads
- ``C`` image channels
- ``L`` text length in tokens
- ``F`` audio frames
- ``M`` mel bins
- ``K`` classes (or labels of a multilabel task)

Mask convention: every mask is ``bool`` with **True = real token / present**.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from torch import Tensor


class EncoderOutput(NamedTuple):
    """What every encoder returns.

    Attributes:
        tokens: ``(B, T, D)`` token features projected to the shared width ``D``.
        mask: ``(B, T)`` bool, True where a token is real (not padding).
    """

    tokens: Tensor
    mask: Tensor


class FusionOutput(NamedTuple):
    """What every fuser returns.

    Attributes:
        pooled: ``(B, D_out)`` the fused representation that the task heads read.
        per_modality: modality -> ``(B, D)`` that modality's pooled features (zeros where absent).
        attention: ``"query->key"`` -> ``(B, H, T_q, T_k)`` cross-modal attention weights, or
            an empty dict for fusers without attention.
    """

    pooled: Tensor
    per_modality: dict[str, Tensor]
    attention: dict[str, Tensor]


@dataclass
class Batch:
    """One collated batch. A dataclass so that Lightning moves every tensor to the device.

    Attributes:
        inputs: modality -> encoder keyword arguments, e.g. ``{"image": {"pixel_values": (B, C, H, W)}}``.
        present: modality -> ``(B,)`` bool, False where the sample has no value for that modality.
        targets: task -> multiclass ``(B,)`` long class index (``-1`` where the target is missing),
            multilabel ``(B, K)`` float 0/1 (NaN where missing), regression ``(B,)`` float (NaN where
            missing). Empty for an unlabelled manifest.
        ids: the sample ids, in batch order.
    """

    inputs: dict[str, dict[str, Tensor]]
    present: dict[str, Tensor]
    targets: dict[str, Tensor] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)
