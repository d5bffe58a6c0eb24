"""Any Pillow image mode to ``channels`` (1 or 3) values in ``[0, 1]``, oriented and resized.

What each mode becomes (the table in docs/own-data.md):

- EXIF orientation is applied first: phone cameras store photos sideways with a rotation tag. An
  EXIF block that cannot be read leaves the image as stored (its pixels are fine; it decoded before
  orientation was applied, and still does).
- ``I;16`` / ``I;16B`` / ``I;16L`` (16-bit grey, e.g. 16-bit PNGs) and ``I`` (32-bit integer grey,
  what Pillow opens some 16-bit files as): value / 65535, values outside ``0..65535`` clipped. They are
  resized in floating point, so no precision is lost to an 8-bit step. ``F`` (float grey): taken as
  ``[0, 1]``, clipped. 16-bit RGB(A) files are opened by Pillow as 8-bit RGB(A) (top byte: the same
  scale).
- With transparency (``LA``, ``RGBA``, ``PA``, premultiplied ``La`` / ``RGBa``, and ``P``, ``L`` or
  ``RGB`` images with a transparent colour): composited over a solid background of grey level
  ``background`` (0..255; default 255, white, as a viewer shows them), then the alpha is dropped.
- ``P`` (palette), ``1``, ``CMYK`` (Pillow's plain conversion, no ICC profile), ``YCbCr``, ...: to RGB
  by Pillow.
- Then to the configured channels: 3 from grey repeats the grey value; 1 from colour is Pillow's
  ITU-R 601-2 luma, ``L = 0.299 R + 0.587 G + 0.114 B``.
"""

from __future__ import annotations

import warnings

import numpy as np
from PIL import Image, ImageOps

HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
ALPHA_MODES = ("LA", "La", "RGBA", "RGBa", "PA")
_SIXTEEN_BIT = 65535.0


def image_to_array(img: Image.Image, channels: int, size: int, background: int = 255) -> np.ndarray:
    """An image as ``(size, size, channels)`` float32 in ``[0, 1]`` (see the module's table).

    Args:
        img: an opened, loaded image of any mode.
        channels: 1 (grey) or 3 (RGB).
        size: side of the square output, in pixels (bilinear resize).
        background: grey level (0..255) transparent pixels are composited over.

    Raises:
        ValueError: a mode Pillow cannot convert to RGB (e.g. ``LAB``).
    """
    _upright(img)
    if img.mode in HIGH_BIT_MODES:
        return _high_bit(img, channels, size)
    if img.mode in ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")  # applies a palette's or a transparent colour's alpha too
        solid = Image.new("RGBA", img.size, (background, background, background, 255))
        img = Image.alpha_composite(solid, rgba).convert("RGB")
    img = img.convert("L" if channels == 1 else "RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    array = np.asarray(img, dtype=np.float32) / 255.0  # (H, W) or (H, W, 3)
    return array[:, :, None] if array.ndim == 2 else array


def _upright(img: Image.Image) -> None:
    """Apply the EXIF orientation in place; an unreadable EXIF block is ignored."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Pillow's "Corrupt EXIF data", naming no file
            ImageOps.exif_transpose(img, in_place=True)
    except Exception:  # Pillow's EXIF parser raises many kinds on a corrupt block (SyntaxError, struct.error)
        return


def _high_bit(img: Image.Image, channels: int, size: int) -> np.ndarray:
    """16/32-bit integer or float grey -> ``(size, size, channels)`` in [0, 1], resized as floats."""
    values = np.asarray(img, dtype=np.float32)  # (H, W)
    if img.mode != "F":
        values = values / _SIXTEEN_BIT
    grey = Image.fromarray(np.clip(values, 0.0, 1.0).astype(np.float32))  # mode F
    if grey.size != (size, size):
        grey = grey.resize((size, size), Image.Resampling.BILINEAR)
    array = np.array(grey, dtype=np.float32)[:, :, None]  # (H, W, 1), a writable copy
    return np.repeat(array, channels, axis=2) if channels > 1 else array
