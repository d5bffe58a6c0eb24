"""Modality dropout: hide whole modalities of some samples during training."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor


def drop_modalities(present: Mapping[str, Tensor], p: float) -> dict[str, Tensor]:
    """Modality dropout: each present modality of each sample is dropped with probability ``p``,
    never all of a sample's present modalities (one of them, drawn at random, is then kept).

    Args:
        present: modality -> ``(B,)`` bool, True = the sample has it.
        p: drop probability, ``0 <= p < 1``.

    Returns:
        modality -> ``(B,)`` bool, a subset of ``present``; a sample with at least one present
        modality keeps at least one.
    """
    names = sorted(present)
    if p <= 0 or not names:
        return {m: present[m].bool() for m in names}
    have = torch.stack([present[m].bool() for m in names], dim=1)  # (B, n)
    keep = have & (torch.rand(have.shape, device=have.device) >= p)  # (B, n)
    lost = have.any(dim=1) & ~keep.any(dim=1)  # (B,) samples that would have nothing left
    # one present modality of each such sample, uniformly: the largest random score among present ones
    scores = torch.rand(have.shape, device=have.device).masked_fill(~have, -1.0)  # (B, n)
    rescue = torch.zeros_like(keep).scatter_(1, scores.argmax(dim=1, keepdim=True), True)  # (B, n)
    keep = keep | (rescue & lost[:, None])
    return {m: keep[:, i] for i, m in enumerate(names)}
