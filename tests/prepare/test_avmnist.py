"""AV-MNIST converter: MultiBench's .npy layout -> PNG images and spectrograms -> check-data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.prepare.conftest import check_data, load_script, read_rows

CONFIG = "configs/benchmarks/avmnist.yaml"
N_TRAIN, N_TEST = 24, 10


def write_release(root: Path, audio_scale: float = 1.0) -> Path:
    """``avmnist/{image,audio}/{train,test}_data.npy`` and ``{train,test}_labels.npy``, float arrays
    on the 0..255 scale, flat images as MultiBench stores them."""
    rng = np.random.default_rng(0)
    root = root / "avmnist"
    for name, n in (("train", N_TRAIN), ("test", N_TEST)):
        for folder, shape, scale in (("image", (n, 784), 1.0), ("audio", (n, 112, 112), audio_scale)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            np.save(
                root / folder / f"{name}_data.npy", rng.integers(0, 256, shape).astype(np.float32) * scale
            )
        np.save(root / f"{name}_labels.npy", np.arange(n) % 10)
    return root


def test_converts_the_release(tmp_path: Path) -> None:
    release, out = write_release(tmp_path / "download"), tmp_path / "avmnist"
    script = load_script("avmnist")
    assert script.main(["--root", str(release), "--out", str(out), "--val_size", "4"]) == 0
    rows = read_rows(out / "manifest.csv")
    assert [r["split"] for r in rows] == ["train"] * 20 + ["val"] * 4 + ["test"] * 10
    assert [r["id"] for r in rows[19:21]] == ["train-00019", "train-00020"]  # the last 4 rows are val
    assert rows[-1]["id"] == "test-00009" and [r["label"] for r in rows[:11]] == [
        str(i % 10) for i in range(11)
    ]
    # pixels and spectrograms as stored: the image is the flat row reshaped to 28 x 28
    image = np.asarray(Image.open(out / rows[21]["image"]))
    assert image.shape == (28, 28) and image.dtype == np.uint8
    assert np.array_equal(image, np.load(release / "image" / "train_data.npy")[21].reshape(28, 28))
    spectrogram = np.asarray(Image.open(out / rows[-1]["audio"]))
    assert np.array_equal(spectrogram, np.load(release / "audio" / "test_data.npy")[9])
    check_data(CONFIG, out / "manifest.csv")


def test_spectrograms_stored_in_0_1_are_scaled_to_0_255(tmp_path: Path) -> None:
    release, out = write_release(tmp_path / "download", audio_scale=1 / 255), tmp_path / "avmnist"
    load_script("avmnist").main(
        ["--root", str(release), "--out", str(out), "--val_size", "4", "--limit", "1"]
    )
    spectrogram = np.asarray(Image.open(out / "audio" / "test-00000.png"))
    assert np.array_equal(spectrogram, np.rint(np.load(release / "audio" / "test_data.npy")[0] * 255))


def test_mismatched_arrays_are_refused(tmp_path: Path) -> None:
    release, script = write_release(tmp_path / "download"), load_script("avmnist")
    np.save(release / "test_labels.npy", np.arange(N_TEST - 1) % 10)
    with pytest.raises(script.c.PrepareError, match="test arrays disagree: 10 images, 10 spectrograms"):
        script.main(["--root", str(release), "--out", str(tmp_path / "out"), "--val_size", "4"])
    (release / "audio" / "train_data.npy").unlink()
    with pytest.raises(script.c.PrepareError, match=r"audio/train_data\.npy: not found"):
        script.main(["--root", str(release), "--out", str(tmp_path / "out")])
