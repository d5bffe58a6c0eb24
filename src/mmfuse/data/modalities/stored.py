"""Arrays decoded or computed when packing (``mmfuse pack``), stored with the settings they depend on.

A stored member (``000123.image.npy``: pixels; ``000123.audio.npy``: log-mel frames) is two NumPy
``.npy`` records one after the other, as ``np.save`` writes two arrays to one file: first the
settings the array was computed with (a 0-d string array holding their JSON), then the array. NumPy
reads them back in that order from one open file::

    with open("000123.audio.npy", "rb") as f:
        settings, frames = json.loads(str(np.load(f))), np.load(f)

Training reads one with two header look-ups and a copy: each distinct ``.npy`` header (a handful per
dataset: one image shape, one per clip length) is parsed by NumPy once per process, instead of a PNG
decode, a zip archive's directory or a WAV decode and STFT per sample (docs/scale.md, "How fast").
The settings travel with every array, so an array read with other settings is refused by name
instead of being taken for what those settings would give.
"""

from __future__ import annotations

import functools
import io
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from mmfuse.data.manifest.errors import SampleError

_MAGIC = b"\x93NUMPY"


def dump(settings: Mapping[str, Any], array: np.ndarray) -> bytes:
    """The stored member of ``array``: its settings' record, then the array's."""
    out = io.BytesIO()
    np.save(out, np.array(settings_text(settings)), allow_pickle=False)
    np.save(out, np.ascontiguousarray(array), allow_pickle=False)
    return out.getvalue()


def settings_text(settings: Mapping[str, Any]) -> str:
    """The settings as stored: JSON with sorted keys (the same settings give the same text)."""
    return _text(tuple(settings.items()))


@functools.lru_cache(maxsize=64)
def _text(items: tuple[tuple[str, Any], ...]) -> str:
    return json.dumps(dict(items), sort_keys=True)  # ~5 µs, a third of reading a stored image


def load(data: bytes, settings: Mapping[str, Any], name: str) -> np.ndarray:
    """The array of a stored member, if it was computed with ``settings``: a read-only view of ``data``
    (copy it before writing to it).

    Args:
        data: the member's bytes.
        settings: what the reading modality computes with (every key must be stored with this value).
        name: where the bytes came from (``shard.tar:000123.audio.npy``), for messages.

    Raises:
        SampleError: not a stored member (a plain ``.npy``, truncated bytes), or stored with other
            settings (each differing one named, with its value now).
    """
    dtype, shape, fortran, start = _record(data, 0, name)
    if dtype.kind != "U" or shape != ():
        raise SampleError(
            f"not a stored array: its first record is a {dtype} array of shape {shape}, not the settings",
            file=name,
        )
    end = start + dtype.itemsize
    text = str(np.frombuffer(data, dtype, 1, start)[0]) if len(data) >= end else ""
    if text != settings_text(settings):  # the same text is the common case; else compare the values
        try:
            stored = json.loads(text)
        except ValueError as e:
            raise SampleError(f"the stored settings do not read: {e}", file=name) from None
        changed = [f"{k}={stored.get(k)} (now {v})" for k, v in settings.items() if stored.get(k) != v]
        if changed:
            raise SampleError(
                f"stored with other settings: {', '.join(changed)}; pack the shards again", file=name
            )
    dtype, shape, fortran, start = _record(data, end, name)
    count = math.prod(shape)
    if len(data) < start + count * dtype.itemsize:
        raise SampleError(f"stored array truncated: {len(data) - start} bytes for {shape} {dtype}", file=name)
    flat = np.frombuffer(data, dtype, count, start)
    return flat.reshape(shape, order="F" if fortran else "C")


def _record(data: bytes, offset: int, name: str) -> tuple[np.dtype, tuple[int, ...], bool, int]:
    """(dtype, shape, Fortran order, where the data starts) of the ``.npy`` record at ``offset``."""
    magic = data[offset : offset + 8]
    if magic[:6] != _MAGIC or magic[6:7] not in (b"\x01", b"\x02"):
        raise SampleError(f"not a stored array: no .npy record at byte {offset}", file=name)
    width = 2 if magic[6] == 1 else 4  # the header's length: uint16 (version 1), uint32 (version 2)
    size = int.from_bytes(data[offset + 8 : offset + 8 + width], "little")
    end = offset + 8 + width + size
    try:
        dtype, shape, fortran = _header(data[offset:end])
    except ValueError as e:
        raise SampleError(f"not a stored array: the .npy header does not read ({e})", file=name) from None
    return dtype, shape, fortran, end


@functools.lru_cache(maxsize=1024)
def _header(record: bytes) -> tuple[np.dtype, tuple[int, ...], bool]:
    """A ``.npy`` header parsed by NumPy (cached: a dataset's arrays share a few distinct headers).

    Raises:
        ValueError: the header does not parse, or describes Python objects (never loaded).
    """
    f = io.BytesIO(record)
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read(f)
    if dtype.hasobject:
        raise ValueError("an array of Python objects")
    return dtype, tuple(shape), bool(fortran)
