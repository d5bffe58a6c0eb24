"""Fixed sine/cosine positions for token sequences and image grids (no parameters, any length)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


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
