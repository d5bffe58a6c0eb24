"""Mask conventions, pooling and positions: the one place masks are converted.

Our masks are ``bool`` with **True = real token / present**. PyTorch disagrees with itself
(``key_padding_mask``: True = ignore; SDPA bool mask: True = attend), so every conversion for
an attention call goes through :func:`key_padding_mask` here and nowhere else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor


def key_padding_mask(mask: Tensor) -> Tensor:
    """Our mask -> the ``key_padding_mask`` of ``nn.MultiheadAttention`` / ``nn.TransformerEncoder``.

    Args:
        mask: ``(B, T)`` bool, True = real token.

    Returns:
        ``(B, T)`` bool, True = ignore this key.
    """
    return ~mask


def ensure_one_key(mask: Tensor) -> Tensor:
    """Unmask position 0 in rows that have no real key, so attention does not softmax over nothing.

    A row with every key masked gives NaN (softmax over an empty set). Callers attend with the
    returned mask, then zero the result for rows where ``mask.any(-1)`` is False.

    Args:
        mask: ``(B, T)`` bool, True = real key, ``T >= 1``.

    Returns:
        ``(B, T)`` bool, equal to ``mask`` except ``[b, 0] = True`` where row ``b`` was all False.
    """
    empty = ~mask.any(dim=-1)  # (B,)
    first = torch.zeros_like(mask)
    first[:, 0] = True
    return mask | (first & empty[:, None])


def zero_masked(tokens: Tensor, mask: Tensor) -> Tensor:
    """Set the features of masked tokens to exactly zero (also where they were inf/NaN).

    Args:
        tokens: ``(B, T, D)`` features.
        mask: ``(B, T)`` bool, True = real token.

    Returns:
        ``(B, T, D)`` with masked positions zero.
    """
    # masked_fill, not multiply: 0 * inf would still be NaN
    return tokens.masked_fill(~mask[..., None], 0.0)


def masked_mean(tokens: Tensor, mask: Tensor) -> Tensor:
    """Mean of the real tokens of each row; zeros for a row with no real token.

    Args:
        tokens: ``(B, T, D)`` features; values at masked positions are ignored (even inf/NaN).
        mask: ``(B, T)`` bool, True = real token.

    Returns:
        ``(B, D)`` per-row mean over real tokens.
    """
    kept = zero_masked(tokens, mask)  # (B, T, D)
    count = mask.sum(dim=1, keepdim=True).clamp(min=1).to(tokens.dtype)  # (B, 1)
    return kept.sum(dim=1) / count


def sinusoidal_positions(
    length: int, dim: int, device: torch.device | None = None, dtype: torch.dtype | None = None
) -> Tensor:
    """Fixed sine/cosine positions (Vaswani et al.), for any length and width, no parameters.

    Args:
        length: number of positions ``T``.
        dim: width ``D`` (odd widths are fine: the last cosine column is dropped).
        device: where to build the table.
        dtype: dtype of the table (default float32).

    Returns:
        ``(T, D)`` table; column ``2i`` is ``sin(t / 10000^(2i/D))``, column ``2i+1`` its cosine.
    """
    half = (dim + 1) // 2
    # computed in float32 so low-precision dtypes do not round the frequencies
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]  # (T, 1)
    freq = torch.exp(
        torch.arange(half, device=device, dtype=torch.float32) * (-math.log(10000.0) * 2 / max(dim, 1))
    )  # (D/2,)
    angle = pos * freq  # (T, D/2)
    table = torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(1)[:, :dim]  # (T, D)
    return table.to(dtype or torch.float32)


def sinusoidal_positions_2d(
    height: int, width: int, dim: int, device: torch.device | None = None, dtype: torch.dtype | None = None
) -> Tensor:
    """Fixed 2D positions for an image grid: rows in the first half of the width, columns in the rest.

    Args:
        height: grid rows ``h``.
        width: grid columns ``w``.
        dim: width ``D``.
        device: where to build the table.
        dtype: dtype of the table (default float32).

    Returns:
        ``(h * w, D)`` table in row-major order, matching ``x.flatten(2).transpose(1, 2)`` of
        ``(B, D, h, w)``.
    """
    d_row = dim // 2
    rows = sinusoidal_positions(height, d_row, device, dtype)  # (h, D/2)
    cols = sinusoidal_positions(width, dim - d_row, device, dtype)  # (w, D/2)
    grid = torch.cat(
        [rows[:, None, :].expand(height, width, d_row), cols[None, :, :].expand(height, width, dim - d_row)],
        dim=-1,
    )  # (h, w, D)
    return grid.reshape(height * width, dim)


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
