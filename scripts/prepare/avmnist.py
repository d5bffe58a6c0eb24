"""AV-MNIST (Vielzeuf et al., 2018) in MultiBench's layout -> an mmfuse manifest: digit image +
spoken-digit spectrogram, 10 classes.

Reads the ``avmnist`` folder MultiBench's ``datasets/avmnist/get_data.py`` loads::

    avmnist/image/train_data.npy     (60000, 784)  28 x 28 MNIST digits (PCA-degraded), values 0..255
    avmnist/image/test_data.npy      (10000, 784)
    avmnist/audio/train_data.npy     (60000, 112, 112)  spectrograms of spoken digits, values 0..255
    avmnist/audio/test_data.npy      (10000, 112, 112)
    avmnist/train_labels.npy         (60000,)  the digit
    avmnist/test_labels.npy          (10000,)

and writes ``<out>/manifest.csv`` (``id``: ``train-00042`` / ``test-00042``, the row in the release's
arrays; ``split``; ``image``: ``image/<id>.png``, 28 x 28 grey; ``audio``: ``audio/<id>.png``, the
112 x 112 spectrogram as a grey image; ``label``: 0..9). The split is MultiBench's: the last 5,000
training rows are the validation set. The release stores spectrograms, not sound, so the config reads
them with an image encoder, as MultiBench's LeNet baselines do; there is no waveform to recover.

    python scripts/prepare/avmnist.py --root data/downloads/avmnist
    mmfuse fit --config configs/benchmarks/avmnist.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this script
import _common as c
import numpy as np

CONFIG = "configs/benchmarks/avmnist.yaml"
DEFAULT_OUT = "data/avmnist"


def scale_of(values: np.ndarray, path: Path) -> float:
    """The factor that puts an array on MultiBench's 0..255 scale (it divides by 255): 1, or 255 for an
    array stored in [0, 1]. Read in chunks: the training spectrograms are ~750 MB."""
    low, high = np.inf, -np.inf
    for start in range(0, len(values), 2048):
        chunk = np.asarray(values[start : start + 2048], dtype=np.float64)
        if not np.isfinite(chunk).all():
            raise c.PrepareError(f"{path}: NaN or infinite values (rows {start}..{start + len(chunk) - 1})")
        low, high = min(low, float(chunk.min())), max(high, float(chunk.max()))
    if low < 0 or high > 255:
        raise c.PrepareError(
            f"{path}: values in [{low:g}, {high:g}], expected 0..255 as MultiBench reads them"
        )
    return 255.0 if high <= 1.0 else 1.0


class _Scaled:
    """Rows of a memory-mapped array, multiplied by a factor as they are read."""

    def __init__(self, values: np.ndarray, scale: float) -> None:
        self.values, self.scale = values, scale

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, i: int) -> np.ndarray:
        return np.asarray(self.values[i], dtype=np.float64) * self.scale


def load_split(root: Path, name: str) -> tuple[_Scaled, _Scaled, np.ndarray]:
    """A split's images ``(N, 28, 28)`` and spectrograms ``(N, 112, 112)`` on the 0..255 scale (float
    arrays, memory-mapped, scaled as read) and labels ``(N,)``."""
    image_file, audio_file = root / "image" / f"{name}_data.npy", root / "audio" / f"{name}_data.npy"
    images = c.load_npy(image_file, f"the {name} images")
    audio = c.load_npy(audio_file, f"the {name} spectrograms")
    labels = c.load_npy(root / f"{name}_labels.npy", f"the {name} labels")
    n = len(labels)
    if labels.ndim != 1 or len(images) != n or len(audio) != n:
        raise c.PrepareError(
            f"{root}: {name} arrays disagree: {len(images)} images, {len(audio)} spectrograms, "
            f"labels of shape {labels.shape}"
        )
    if images.reshape(n, -1).shape[1] != 28 * 28 or audio.reshape(n, -1).shape[1] != 112 * 112:
        raise c.PrepareError(
            f"{root}: {name} images {images.shape} / spectrograms {audio.shape}: expected 28x28 / 112x112"
        )
    if not np.isin(labels, np.arange(10)).all():
        raise c.PrepareError(f"{root / f'{name}_labels.npy'}: labels outside 0..9")
    image_scale, audio_scale = scale_of(images, image_file), scale_of(audio, audio_file)
    return (
        _Scaled(images.reshape(n, 28, 28), image_scale),
        _Scaled(audio.reshape(n, 112, 112), audio_scale),
        labels,
    )


def main(argv: list[str] | None = None) -> int:
    parser = c.parser(
        __doc__ or "", "MultiBench's avmnist/ folder (holding image/, audio/ and *_labels.npy)", DEFAULT_OUT
    )
    parser.add_argument(
        "--val_size",
        type=int,
        default=5000,
        help="last training rows kept for validation (default 5000, MultiBench's)",
    )
    args = parser.parse_args(argv)
    rows: list[dict[str, str]] = []
    for name in ("train", "test"):
        images, audio, labels = load_split(args.root, name)
        n = len(labels)
        if name == "train" and not 0 < args.val_size < n:
            raise c.PrepareError(f"--val_size {args.val_size}: the release has {n} training rows")
        splits = {"test": range(n)}
        if name == "train":
            splits = {"train": range(n - args.val_size), "val": range(n - args.val_size, n)}
        for split, indices in splits.items():
            chosen = c.limited(indices, args.limit)
            progress = c.Progress(f"avmnist {split}", len(chosen))
            for i in chosen:
                assert isinstance(i, int)
                sample_id = f"{name}-{i:05d}"
                c.grey_png(images[i], args.out / "image" / f"{sample_id}.png")
                c.grey_png(audio[i], args.out / "audio" / f"{sample_id}.png")
                rows.append(
                    {
                        "id": sample_id,
                        "split": split,
                        "image": f"image/{sample_id}.png",
                        "audio": f"audio/{sample_id}.png",
                        "label": str(int(labels[i])),
                    }
                )
                progress.step()
    manifest = c.write_manifest(args.out / "manifest.csv", rows, ["id", "split", "image", "audio", "label"])
    print(f"avmnist: {len(rows)} samples ({c.split_counts(rows)})")
    c.next_steps(manifest, CONFIG, f"{DEFAULT_OUT}/manifest.csv")
    return 0


if __name__ == "__main__":
    c.run(main)
