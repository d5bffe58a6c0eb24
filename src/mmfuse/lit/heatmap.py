"""Heatmap images from matrices (attention weights, confusion counts), with numpy alone.

A 9-stop approximation of matplotlib's *viridis* colormap, interpolated linearly: perceptually
ordered, readable in grey, and no plotting library to depend on. Cells marked invalid (padding
tokens) are drawn light grey, outside the colormap.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

# viridis at 0, 1/8, ..., 1 (RGB)
_VIRIDIS = np.array(
    [
        [68, 1, 84],
        [71, 44, 122],
        [59, 81, 139],
        [44, 113, 142],
        [33, 144, 141],
        [39, 173, 129],
        [92, 200, 99],
        [170, 220, 50],
        [253, 231, 37],
    ],
    dtype=np.float64,
)
_INVALID = np.array([200, 200, 200], dtype=np.uint8)  # light grey: padding, not a value


def colorize(values: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """Map a ``(R, C)`` matrix of values in ``[0, vmax]`` to ``(R, C, 3)`` uint8 viridis colours.

    ``vmax`` defaults to the matrix's maximum (a matrix of zeros is all dark).
    """
    values = np.asarray(values, dtype=np.float64)
    top = float(values.max()) if vmax is None and values.size else (vmax or 0.0)
    scaled = np.clip(values / top, 0.0, 1.0) if top > 0 else np.zeros_like(values)
    position = scaled * (len(_VIRIDIS) - 1)  # (R, C) in [0, 8]
    low = np.floor(position).astype(int).clip(0, len(_VIRIDIS) - 2)
    frac = (position - low)[..., None]  # (R, C, 1)
    rgb = _VIRIDIS[low] * (1 - frac) + _VIRIDIS[low + 1] * frac  # (R, C, 3)
    return rgb.round().astype(np.uint8)


def heatmap(
    values: np.ndarray | Tensor,
    valid: np.ndarray | Tensor | None = None,
    vmax: float | None = None,
    size: int = 256,
) -> np.ndarray:
    """A ``(R*s, C*s, 3)`` uint8 image of a ``(R, C)`` matrix: one ``s x s`` block per cell.

    ``s`` makes the longer side about ``size`` pixels (at least 1 pixel per cell), so that small
    matrices stay legible and every cell keeps sharp edges (no interpolation across tokens).
    ``valid`` (``(R, C)`` bool) greys out the other cells; ``vmax`` defaults to the largest valid value.
    """
    values = _numpy(values).astype(np.float64)
    mask = np.ones(values.shape, dtype=bool) if valid is None else _numpy(valid).astype(bool)
    if vmax is None:
        vmax = float(values[mask].max()) if mask.any() else 0.0
    rgb = colorize(np.where(mask, values, 0.0), vmax)
    rgb[~mask] = _INVALID
    scale = max(1, size // max(1, *rgb.shape[:2]))
    return np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)


def _numpy(x: np.ndarray | Tensor) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
