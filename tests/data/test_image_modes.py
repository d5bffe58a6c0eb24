"""Every Pillow mode a user's images come in, against values computed here independently; max_pixels."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmfuse.data.manifest.errors import SampleError
from mmfuse.data.modalities.image import MAX_PIXELS, ImageDataModule

TOL = 1 / 255 + 1e-6  # Pillow rounds compositing and colour conversion to 8 bits


def _pixels(path: Path, channels: int = 3, **kwargs: object) -> np.ndarray:
    """The decoded image as (H, W, C) values in [0, 1]: mean 0 and std 1 leave them unnormalised."""
    with Image.open(path) as img:
        size = img.size[0]
        assert img.size == (size, size)  # square: no resize, so every pixel can be compared
    dm = ImageDataModule(size=size, channels=channels, mean=[0.0] * channels, std=[1.0] * channels, **kwargs)  # type: ignore[arg-type]
    x = dm.load(path.name, path.parent, train=False)["pixel_values"]
    return x.permute(1, 2, 0).numpy()


def test_16_bit_grey_png_keeps_its_full_range(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 16).round().astype(np.uint16)
    values = np.tile(ramp, (16, 1))  # (16, 16): every column a different 16-bit level
    Image.fromarray(values).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as img:
        assert img.mode in ("I;16", "I")  # what Pillow opens it as
    got = _pixels(tmp_path / "g16.png", channels=1)[:, :, 0]
    np.testing.assert_allclose(got, values / 65535.0, atol=1e-6)
    assert len(np.unique(got)) == 16  # clipping at 255 left 2 levels of 16
    rgb = _pixels(tmp_path / "g16.png", channels=3)
    np.testing.assert_allclose(rgb, np.repeat((values / 65535.0)[:, :, None], 3, axis=2), atol=1e-6)


def test_16_bit_grey_is_resized_in_floating_point(tmp_path: Path) -> None:
    values = np.full((8, 8), 1000, dtype=np.uint16)  # a level an 8-bit step (257) cannot hold
    Image.fromarray(values).save(tmp_path / "g16.png")
    dm = ImageDataModule(size=4, channels=1, mean=[0.0], std=[1.0])
    x = dm.load("g16.png", tmp_path, train=False)["pixel_values"]
    assert torch.allclose(x, torch.full((1, 4, 4), 1000 / 65535), atol=1e-6)


def test_32_bit_integer_and_float_grey(tmp_path: Path) -> None:
    ints = np.array([[0, 32768], [65535, 70000]], dtype=np.int32)  # mode I; 70000 is out of range
    Image.fromarray(ints).save(tmp_path / "i.tif")
    with Image.open(tmp_path / "i.tif") as img:
        assert img.mode == "I"
    np.testing.assert_allclose(
        _pixels(tmp_path / "i.tif", 1)[:, :, 0], [[0, 32768 / 65535], [1, 1]], atol=1e-6
    )
    floats = np.array([[0.25, 0.5], [-1.0, 2.0]], dtype=np.float32)  # mode F: [0, 1], clipped
    Image.fromarray(floats).save(tmp_path / "f.tif")
    np.testing.assert_allclose(_pixels(tmp_path / "f.tif", 1)[:, :, 0], [[0.25, 0.5], [0, 1]], atol=1e-6)


def test_l_and_bilevel(tmp_path: Path) -> None:
    grey = np.arange(16, dtype=np.uint8).reshape(4, 4) * 17
    Image.fromarray(grey).save(tmp_path / "l.png")
    np.testing.assert_allclose(_pixels(tmp_path / "l.png", 1)[:, :, 0], grey / 255, atol=1e-6)
    np.testing.assert_allclose(
        _pixels(tmp_path / "l.png", 3), np.repeat(grey[:, :, None] / 255, 3, 2), atol=1e-6
    )
    Image.fromarray(grey > 100).save(tmp_path / "b.png")  # mode 1
    np.testing.assert_allclose(_pixels(tmp_path / "b.png", 1)[:, :, 0], (grey > 100).astype(float), atol=1e-6)


def _over(value: np.ndarray, alpha: np.ndarray, background: float) -> np.ndarray:
    """Alpha compositing over a solid background, all in [0, 1]."""
    return value * alpha + background * (1 - alpha)


@pytest.mark.parametrize("background", [255, 0])
def test_rgba_and_la_are_composited_over_the_background(tmp_path: Path, background: int) -> None:
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (6, 6, 4), dtype=np.uint8)
    rgba[0, 0, 3], rgba[0, 1, 3] = 0, 255  # fully transparent, fully opaque
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    want = _over(rgba[:, :, :3] / 255, rgba[:, :, 3:] / 255, background / 255)
    got = _pixels(tmp_path / "a.png", 3, alpha_background=background)
    np.testing.assert_allclose(got, want, atol=TOL)
    assert got[0, 0].tolist() == [background / 255] * 3  # transparent: the background only
    la = rgba[:, :, [0, 3]]
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    want = _over(la[:, :, :1] / 255, la[:, :, 1:] / 255, background / 255)
    np.testing.assert_allclose(_pixels(tmp_path / "la.png", 1, alpha_background=background), want, atol=TOL)


def test_palette_with_and_without_transparency(tmp_path: Path) -> None:
    palette = [255, 0, 0, 0, 0, 255, 10, 200, 30]  # 0 red, 1 blue, 2 green
    index = np.array([[0, 1, 2], [2, 1, 0], [1, 1, 1]], dtype=np.uint8)
    img = Image.fromarray(index, "P")
    img.putpalette(palette)
    colours = np.array(palette, dtype=float).reshape(3, 3) / 255
    img.save(tmp_path / "p.png")
    np.testing.assert_allclose(_pixels(tmp_path / "p.png"), colours[index], atol=1e-6)
    img.save(tmp_path / "pt.png", transparency=1)  # index 1 (blue) is transparent
    want = colours[index]
    want[index == 1] = 1.0  # white background
    np.testing.assert_allclose(_pixels(tmp_path / "pt.png"), want, atol=1e-6)
    luma = want @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(_pixels(tmp_path / "pt.png", 1)[:, :, 0], luma, atol=TOL)


def test_cmyk_is_converted_to_rgb(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    cmyk = rng.integers(0, 256, (4, 4, 4), dtype=np.uint8)
    Image.fromarray(cmyk, "CMYK").save(tmp_path / "c.tif")
    c, k = cmyk[:, :, :3] / 255, cmyk[:, :, 3:] / 255
    np.testing.assert_allclose(_pixels(tmp_path / "c.tif"), (1 - c) * (1 - k), atol=TOL)


@pytest.mark.parametrize(("orientation", "turns"), [(1, 0), (3, 2), (6, -1), (8, 1)])
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int, turns: int) -> None:
    # a phone stores the sensor's pixels and a tag saying how to turn them to be upright
    stored = np.arange(16, dtype=np.uint8).reshape(4, 4) * 16
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "o.png", exif=exif)
    upright = np.rot90(stored, turns)  # k=-1: a quarter turn clockwise (orientation 6)
    np.testing.assert_allclose(_pixels(tmp_path / "o.png", 1)[:, :, 0], upright / 255, atol=1e-6)


def test_exif_orientation_of_a_jpeg(tmp_path: Path) -> None:
    stored = np.zeros((16, 16, 3), dtype=np.uint8)
    stored[:8, :, :] = 255  # top half white as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # turn a quarter clockwise: the white half goes to the right
    Image.fromarray(stored).save(tmp_path / "o.jpg", exif=exif, quality=95)
    got = _pixels(tmp_path / "o.jpg", 1)[:, :, 0]
    assert got[:, 12:].mean() > 0.9 and got[:, :4].mean() < 0.1


def test_an_unreadable_exif_block_leaves_the_image_as_stored(tmp_path: Path) -> None:
    stored = np.arange(16, dtype=np.uint8).reshape(4, 4) * 16
    Image.fromarray(stored).save(tmp_path / "e.png", exif=b"Exif\x00\x00garbage")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no warning naming no file
        got = _pixels(tmp_path / "e.png", 1)[:, :, 0]
    np.testing.assert_allclose(got, stored / 255, atol=1e-6)


def _png_claiming(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width x height`` (a few bytes on disk, pixel data missing)."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    struct.pack_into(">II", data, 16, width, height)  # IHDR data starts at byte 16
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))  # the chunk's CRC
    path.write_bytes(bytes(data))


def test_max_pixels_is_checked_from_the_header_before_decoding(tmp_path: Path) -> None:
    _png_claiming(tmp_path / "huge.png", 13000, 13000)  # ~1 GB decoded, 67 bytes on disk
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(SampleError) as info:
            ImageDataModule(size=8).load("huge.png", tmp_path, train=False)
    assert info.value.file == str(tmp_path / "huge.png")
    # the size is the reason, not a failed decode: nothing was decoded
    assert info.value.reason == (
        f"image is 13000 x 13000 = 169,000,000 pixels, more than max_pixels={MAX_PIXELS:,} "
        "(raise max_pixels to accept it)"
    )
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    with pytest.raises(SampleError, match="more than max_pixels=99"):
        Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "s.png")
        ImageDataModule(size=8, max_pixels=99).load("s.png", tmp_path, train=False)
    ImageDataModule(size=8, max_pixels=100).load("s.png", tmp_path, train=False)  # the limit itself is fine
    with pytest.raises(ValueError, match="max_pixels"):
        ImageDataModule(max_pixels=0)
