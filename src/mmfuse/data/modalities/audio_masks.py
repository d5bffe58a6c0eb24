"""SpecAugment-style masks: hide random stretches of time and bands of mel bins of a training clip.

Park et al., "SpecAugment" (Interspeech 2019). A masked stretch takes each mel bin's mean over the
clip (its average spectrum), not silence: a per-clip standardisation (``AudioCNN(normalize=True)``)
reads a masked band as zero and a masked stretch as about zero.
"""

from __future__ import annotations

import torch
from torch import Tensor


def mask_spectrogram(
    frames: Tensor, time_masks: int, max_time_mask: int, freq_masks: int, max_freq_mask: int
) -> Tensor:
    """Mask ``time_masks`` stretches of frames and ``freq_masks`` bands of mel bins.

    Each width is drawn uniformly from ``0..max`` (so a mask may be empty) and its start uniformly
    where it fits; masks may overlap. Every draw comes from torch's default generator, which the
    dataset seeds per sample (:func:`mmfuse.data.sampling.sample_seed`), as for the random crop: the
    same sample in the same epoch gets the same masks in any worker, and a resumed run replays them.

    Args:
        frames: ``(F, M)`` log-mel frames of one clip.
        time_masks: how many stretches of frames to mask.
        max_time_mask: the widest stretch, in frames (capped at ``F``).
        freq_masks: how many bands of mel bins to mask.
        max_freq_mask: the widest band, in bins (capped at ``M``).

    Returns:
        a new ``(F, M)`` tensor; ``frames`` is left as it is.
    """
    out = frames.clone()
    if out.numel() == 0:
        return out
    bin_means = frames.mean(dim=0)  # (M,)
    length, bins = frames.shape
    for _ in range(time_masks):
        start, width = _draw(length, max_time_mask)
        out[start : start + width] = bin_means
    for _ in range(freq_masks):
        start, width = _draw(bins, max_freq_mask)
        out[:, start : start + width] = bin_means[start : start + width]
    return out


def _draw(size: int, max_width: int) -> tuple[int, int]:
    """A random ``(start, width)`` with ``0 <= width <= min(max_width, size)`` inside ``0..size``."""
    width = int(torch.randint(0, min(max_width, size) + 1, ()).item())
    start = int(torch.randint(0, size - width + 1, ()).item())
    return start, width
