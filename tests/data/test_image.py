from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from mmfuse.data.manifest.errors import SampleError
from mmfuse.data.modalities.image import ImageDataModule


def _write(root: Path, name: str, array: np.ndarray, **save_kwargs: Any) -> str:
    Image.fromarray(array).save(root / name, **save_kwargs)
    return name


def _gradient(h: int = 8, w: int = 8) -> np.ndarray:
    """RGB uint8 image whose red channel rises left to right: a flip reverses it."""
    img = np.zeros((h, w, 3), dtype=np.uint8)
    img[:, :, 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    img[:, :, 1] = 255
    return img


def test_rgb_png_shape_and_normalisation(tmp_path: Path) -> None:
    name = _write(tmp_path, "a.png", _gradient())
    x = ImageDataModule(size=8).load(name, tmp_path, train=False)["pixel_values"]
    assert x.shape == (3, 8, 8) and x.dtype == torch.float32
    # default mean = std = 0.5 maps [0, 1] to [-1, 1]
    assert torch.allclose(x[1], torch.ones(8, 8))  # green 255 -> 1
    assert torch.allclose(x[2], -torch.ones(8, 8))  # blue 0 -> -1
    assert x[0, 0, 0].item() == pytest.approx(-1.0) and x[0, 0, -1].item() == pytest.approx(1.0)


def test_grey_conversion_and_custom_mean_std(tmp_path: Path) -> None:
    name = _write(tmp_path, "a.png", np.full((6, 6, 3), 255, dtype=np.uint8))
    dm = ImageDataModule(size=6, channels=1, mean=[0.25], std=[0.25])
    x = dm.load(name, tmp_path, train=False)["pixel_values"]
    assert x.shape == (1, 6, 6)
    assert torch.allclose(x, torch.full((1, 6, 6), 3.0))  # (1 - 0.25) / 0.25
    assert dm.encoder_requirements() == {
        "in_channels": 1,
        "image_size": 6,
        "image_mean": [0.25],
        "image_std": [0.25],
    }


def test_jpeg_and_resize(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    name = _write(tmp_path, "a.jpg", rng.integers(0, 256, (20, 30, 3), dtype=np.uint8), quality=90)
    x = ImageDataModule(size=12).load(name, tmp_path, train=False)["pixel_values"]
    assert x.shape == (3, 12, 12)
    assert x.min() >= -1.0 and x.max() <= 1.0


def test_grey_source_image_becomes_rgb(tmp_path: Path) -> None:
    name = _write(tmp_path, "g.png", np.full((5, 5), 128, dtype=np.uint8))
    x = ImageDataModule(size=5, channels=3).load(name, tmp_path, train=False)["pixel_values"]
    assert x.shape == (3, 5, 5)
    assert torch.allclose(x[0], x[1]) and torch.allclose(x[1], x[2])


def test_mean_std_length_validated() -> None:
    with pytest.raises(ValueError, match="mean"):
        ImageDataModule(channels=3, mean=[0.5])
    with pytest.raises(ValueError, match="std"):
        ImageDataModule(channels=1, std=[0.5, 0.5])


def test_augmentation_only_on_train_and_only_what_is_asked(tmp_path: Path) -> None:
    name = _write(tmp_path, "a.png", _gradient(16, 16))
    plain = ImageDataModule(size=16).load(name, tmp_path, train=False)["pixel_values"]
    flip = ImageDataModule(size=16, hflip=True)
    torch.manual_seed(0)
    # no augmentation outside train, nor on train by default
    assert torch.equal(flip.load(name, tmp_path, train=False)["pixel_values"], plain)
    assert torch.equal(ImageDataModule(size=16).load(name, tmp_path, train=True)["pixel_values"], plain)
    outs = [flip.load(name, tmp_path, train=True)["pixel_values"] for _ in range(20)]
    # hflip alone: the image itself or its mirror, nothing else
    assert all(torch.equal(o, plain) or torch.equal(o, plain.flip(-1)) for o in outs)
    assert any(torch.equal(o, plain) for o in outs) and any(torch.equal(o, plain.flip(-1)) for o in outs)
    # a crop alone shifts the image but never mirrors it: the red channel still rises left to right
    crop = ImageDataModule(size=16, crop_padding=3)
    crops = [crop.load(name, tmp_path, train=True)["pixel_values"] for _ in range(20)]
    assert all(o.shape == plain.shape and o[0, :, -1].mean() > o[0, :, 0].mean() for o in crops)
    assert any(not torch.equal(o, plain) for o in crops)


def test_colour_jitter_stays_in_range(tmp_path: Path) -> None:
    name = _write(tmp_path, "a.png", _gradient(16, 16))
    raw = ImageDataModule(size=16, mean=[0.0] * 3, std=[1.0] * 3)  # pixel_values in [0, 1]
    plain = raw.load(name, tmp_path, train=False)["pixel_values"]
    for options, stat in (({"brightness": 0.5}, torch.mean), ({"contrast": 0.5}, torch.std)):
        jitter = ImageDataModule(size=16, mean=[0.0] * 3, std=[1.0] * 3, **options)  # type: ignore[arg-type]
        outs = [jitter.load(name, tmp_path, train=True)["pixel_values"] for _ in range(20)]
        assert all(float(o.min()) >= 0 and float(o.max()) <= 1 for o in outs)
        values = [float(stat(o)) for o in outs]  # brightness moves the mean, contrast the spread
        assert min(values) < float(stat(plain)) - 0.01 and max(values) > float(stat(plain)) + 0.01, options


def test_erase_hides_one_grey_rectangle_on_train_only(tmp_path: Path) -> None:
    name = _write(tmp_path, "a.png", _gradient(16, 16))
    raw = {"size": 16, "mean": [0.0] * 3, "std": [1.0] * 3}  # pixel_values in [0, 1]
    plain = ImageDataModule(**raw).load(name, tmp_path, train=False)["pixel_values"]  # type: ignore[arg-type]
    always = ImageDataModule(**raw, erase=1.0)  # type: ignore[arg-type]
    assert torch.equal(always.load(name, tmp_path, train=False)["pixel_values"], plain)
    areas = []
    for seed in range(30):
        torch.manual_seed(seed)
        out = always.load(name, tmp_path, train=True)["pixel_values"]
        changed = (out != plain).any(dim=0)  # (H, W)
        rows, cols = changed.any(dim=1).nonzero(), changed.any(dim=0).nonzero()
        box = out[:, int(rows.min()) : int(rows.max()) + 1, int(cols.min()) : int(cols.max()) + 1]
        assert torch.all(box == box.flatten()[0])  # one rectangle of one grey, the rest untouched
        assert torch.equal(out[:, ~changed], plain[:, ~changed])
        areas.append(box[0].numel() / 256)
    assert min(areas) >= 0.01 and max(areas) <= 0.4 and max(areas) - min(areas) > 0.1
    half = ImageDataModule(**raw, erase=0.5)  # type: ignore[arg-type]
    hidden = [
        not torch.equal(half.load(name, tmp_path, train=True)["pixel_values"], plain) for _ in range(40)
    ]
    assert 5 < sum(hidden) < 35
    with pytest.raises(ValueError, match="erase"):
        ImageDataModule(erase=1.5)


def test_augmentation_is_a_function_of_the_seed(tmp_path: Path) -> None:
    # the dataset seeds torch's generator per sample: the same seed must give the same image
    name = _write(tmp_path, "a.png", _gradient(16, 16))
    dm = ImageDataModule(size=16, hflip=True, crop_padding=4, brightness=0.3, contrast=0.3)
    draws = []
    for seed in (1, 2, 1):
        torch.manual_seed(seed)
        draws.append(dm.load(name, tmp_path, train=True)["pixel_values"])
    assert torch.equal(draws[0], draws[2]) and not torch.equal(draws[0], draws[1])


def test_augment_is_a_deprecated_alias(tmp_path: Path) -> None:
    with pytest.warns(FutureWarning, match="hflip: true, crop_padding: 4"):
        old = ImageDataModule(size=16, augment=True)
    assert old.hflip and old.crop_padding == 4 and old.brightness == 0 and old.contrast == 0
    with pytest.warns(FutureWarning):
        assert not ImageDataModule(augment=False).augments
    with pytest.raises(ValueError, match="crop_padding"):
        ImageDataModule(crop_padding=-1)
    with pytest.raises(ValueError, match="brightness"):
        ImageDataModule(brightness=1.5)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SampleError, match="file not found") as info:
        ImageDataModule().load("nope.png", tmp_path, train=False)
    assert info.value.file == str(tmp_path / "nope.png")


def test_truncated_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    name = _write(tmp_path, "full.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    data = (tmp_path / name).read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(SampleError, match="cannot decode image") as info:
        ImageDataModule().load("cut.png", tmp_path, train=False)
    assert info.value.file == str(tmp_path / "cut.png")


def test_not_an_image(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_text("hello")
    with pytest.raises(SampleError, match="cannot decode image"):
        ImageDataModule().load("x.png", tmp_path, train=False)


def test_collate_zeros_for_missing(tmp_path: Path) -> None:
    dm = ImageDataModule(size=4)
    name = _write(tmp_path, "a.png", np.full((4, 4, 3), 255, dtype=np.uint8))
    sample = dm.load(name, tmp_path, train=False)
    batch = dm.collate([sample, None])
    assert batch["pixel_values"].shape == (2, 3, 4, 4)
    assert torch.equal(batch["pixel_values"][0], sample["pixel_values"])
    assert torch.equal(batch["pixel_values"][1], torch.zeros(3, 4, 4))
