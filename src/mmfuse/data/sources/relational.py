"""The relational dataset: image + caption pairs whose label is a relation *between* the modalities.

Each image shows ``num_objects`` coloured dots (distinct colours from :data:`COLOURS`) at random
places on a dark noisy background. The caption names one of them, ``"... the red dot is on the
left ..."``, and the label says whether that holds (``true`` / ``false``, fair coins): whether the
named dot lies in the image's left half. Neither modality alone says anything about the label:
every caption is as often true as false, and every image has dots on both sides.

What it tests: to answer, a model must find *the named dot* in the image and read where it is. A
fuser that pools each modality to one vector first (concat, late, gated) gets from the image a
summary made before it knows which dot will be asked about: it would have to hold every colour's
side, and a convolutional encoder's mean-pooled features hardly hold positions at all (the tokens'
position embeddings average out, and the dots keep away from the left and right borders, whose
zero padding would otherwise tell a dot's side). A token-level fuser lets the caption's colour word
attend to the image tokens of its dot and read those tokens' positions. The quickstart cannot tell
fusers apart (each modality carries an independent bit); this dataset is built to.

The files and the manifest are the quickstart's formats (PNG images, text in the manifest), so the
same modality DataModules decode them. Columns: ``id, split, image, text, label``, and for
inspection the named colour ``colour`` and its dot's centre ``x`` (pixels from the left edge).
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmfuse.data.manifest.source import ManifestSource
from mmfuse.data.manifest.tasks import Task
from mmfuse.data.sources.staging import MANIFEST_FILE, is_complete, staged_dataset
from mmfuse.data.sources.synthetic import NEUTRAL_WORDS, _rng, draw_splits

#: bump whenever the output for the same parameters changes, so ``prepare()`` regenerates old copies
GENERATOR_VERSION = 1
LABELS = ("false", "true")  # class order: index 1 = the caption holds
#: name -> RGB; far apart in hue so that a small CNN tells them apart at a glance
COLOURS = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (60, 90, 255),
    "yellow": (230, 220, 40),
    "magenta": (220, 50, 220),
    "cyan": (40, 210, 220),
}
DOT_RADIUS = 3.0  # pixels
MIN_DISTANCE = 8.0  # between any two dots' centres: they never touch
BAND = (0.3, 0.7)  # the dots' centres' x, as a share of the width: away from the left and right borders
MIN_SIDE = 2.0  # the named dot's centre is at least this far from the middle: never a close call
NOUNS = ("dot", "spot", "blob")
# the generator's random streams (SeedSequence spawn keys); distinct from the quickstart's 1..7
_TRUTH, _IMAGE, _TEXT = 11, 12, 13


def draw_truth(num_samples: int, seed: int) -> np.ndarray:
    """``(num_samples,)`` bool: whether each sample's caption holds (fair coins)."""
    return _rng(seed, _TRUTH).integers(0, 2, size=num_samples).astype(bool)


def _positions(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``(n, 2)`` dot centres (x, y), pairwise at least :data:`MIN_DISTANCE` apart, x inside
    :data:`BAND`; the first (the named dot) at least :data:`MIN_SIDE` from the middle in x."""
    low, high = BAND[0] * size, BAND[1] * size
    margin = DOT_RADIUS + 1
    while True:  # rejection sampling: with the checked sizes most draws are accepted
        x = rng.uniform(low, high, size=n)
        y = rng.uniform(margin, size - margin, size=n)
        xy = np.stack([x, y], axis=1)
        gaps = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(n) * size  # (n, n)
        if gaps.min() >= MIN_DISTANCE and abs(x[0] - size / 2) >= MIN_SIDE:
            return xy


def draw_scene(
    rng: np.random.Generator, truth: bool, size: int, num_objects: int
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """One sample's image and what it shows.

    Returns:
        the image ``(S, S, 3)`` uint8, the dots' colour names (the first is the one the caption
        names) and their centres ``(num_objects, 2)`` as (x, y) pixels, with the first dot in the
        left half (``x < S / 2``) exactly when ``truth``.
    """
    names = [str(c) for c in rng.choice(list(COLOURS), size=num_objects, replace=False)]
    xy = _positions(rng, num_objects, size)
    if (xy[0, 0] < size / 2) != truth:
        xy[:, 0] = size - xy[:, 0]  # mirror the whole scene: same picture statistics, the other answer
    background = rng.uniform(0, 50, size=3)
    pixels = np.broadcast_to(background, (size, size, 3)).copy()  # (S, S, 3)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5  # pixel centres, (S, S) each
    for name, (cx, cy) in zip(names, xy, strict=True):
        colour = np.clip(np.array(COLOURS[name]) + rng.uniform(-20, 20, size=3), 0, 255)
        dot = (xx - cx) ** 2 + (yy - cy) ** 2 <= DOT_RADIUS**2  # (S, S)
        pixels[dot] = colour
    pixels += np.clip(rng.normal(0, 6, size=(size, size, 3)), -15, 15)
    return np.clip(pixels, 0, 255).round().astype(np.uint8), names, xy


def caption(rng: np.random.Generator, colour: str) -> str:
    """``"<filler> the <colour> <noun> is on the left <filler>"``, 0-3 filler words each side, so that
    the colour word is found by meaning, not at a fixed position."""
    noun = NOUNS[int(rng.integers(len(NOUNS)))]
    before = [NEUTRAL_WORDS[k] for k in rng.integers(0, len(NEUTRAL_WORDS), size=int(rng.integers(0, 4)))]
    after = [NEUTRAL_WORDS[k] for k in rng.integers(0, len(NEUTRAL_WORDS), size=int(rng.integers(0, 4)))]
    return " ".join([*before, "the", colour, noun, "is", "on", "the", "left", *after])


def _params(num_samples: int, seed: int, image_size: int, num_objects: int) -> dict[str, Any]:
    if num_samples < 10:
        raise ValueError(f"num_samples={num_samples}: need at least 10 so that val and test are not empty")
    if seed < 0:
        raise ValueError(f"seed={seed} must be >= 0")
    if image_size < 32:
        raise ValueError(f"image_size={image_size} must be >= 32: the dots need room to stay apart")
    if not 1 <= num_objects <= min(len(COLOURS), 4 * image_size // 32):
        raise ValueError(
            f"num_objects={num_objects} must be in 1..{min(len(COLOURS), 4 * image_size // 32)} "
            f"for image_size={image_size} (distinct colours, dots that do not touch)"
        )
    return {
        "generator": __name__,
        "version": GENERATOR_VERSION,
        "num_samples": num_samples,
        "seed": seed,
        "image_size": image_size,
        "num_objects": num_objects,
    }


def generate_relational(
    root: str | Path, num_samples: int, seed: int, image_size: int, num_objects: int
) -> Path:
    """Write the dataset to ``root`` (replacing an older synthetic dataset there) and return the manifest.

    Written to a temporary sibling folder renamed into place at the end, as the quickstart's.

    Raises:
        ValueError: a parameter out of range.
        FileExistsError: ``root`` exists and holds something other than a synthetic dataset.
    """
    root = Path(root)
    params = _params(num_samples, seed, image_size, num_objects)
    with staged_dataset(root, params, "image + caption relation samples", ["images"]) as tmp:
        truth = draw_truth(num_samples, seed)
        splits = draw_splits(num_samples, seed)
        with (tmp / MANIFEST_FILE).open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["id", "split", "image", "text", "label", "colour", "x"])
            for i in range(num_samples):
                sample_id = f"{i:06d}"
                image_path = f"images/{sample_id}.png"
                image, names, xy = draw_scene(_rng(seed, _IMAGE, i), bool(truth[i]), image_size, num_objects)
                Image.fromarray(image, "RGB").save(tmp / image_path)
                text = caption(_rng(seed, _TEXT, i), names[0])
                label = LABELS[int(truth[i])]
                writer.writerow([sample_id, splits[i], image_path, text, label, names[0], f"{xy[0, 0]:.2f}"])
    return root / MANIFEST_FILE


class RelationalSource(ManifestSource):
    """Image + caption pairs whose label is whether the caption's statement holds in the image.

    The caption names one of the image's coloured dots, "the red dot is on the left"; the label
    (``false``/``true``, balanced) needs both modalities *and* where the named dot is, so a fuser
    that pools each modality before combining them stays near chance while token-level fusion can
    solve it (see ``configs/experiments/relational.yaml`` and ``docs/fusion.md``).

    Args:
        root: folder the dataset is written to (``manifest.csv``, ``images/``, ``params.json``).
        num_samples: number of samples (70% train, 15% val, 15% test).
        seed: random seed; the same parameters always generate byte-identical files.
        image_size: width and height of the square RGB images, in pixels (at least 32).
        num_objects: dots per image, each a different colour; one is named, the rest distract.
        tasks: the targets to learn (default: ``label``).
    """

    def __init__(
        self,
        root: str = "data/relational",
        num_samples: int = 3000,
        seed: int = 0,
        image_size: int = 32,
        num_objects: int = 4,
        tasks: list[Task] | None = None,
    ) -> None:
        _params(num_samples, seed, image_size, num_objects)  # fail at config time, not in prepare
        classes = None if tasks is not None else list(LABELS)
        super().__init__(path=str(Path(root) / MANIFEST_FILE), target="label", classes=classes, tasks=tasks)
        self.root = root
        self.num_samples = num_samples
        self.seed = seed
        self.image_size = image_size
        self.num_objects = num_objects

    def declared_tasks(self) -> list[Task]:
        """The tasks as configured; a multiclass task on ``label`` without ``classes`` gets :data:`LABELS`."""
        return [
            replace(t, classes=list(LABELS))
            if t.kind == "multiclass" and t.target_columns == ["label"] and t.classes is None
            else t
            for t in super().declared_tasks()
        ]

    def prepare(self) -> None:
        """Generate the dataset unless ``root`` already holds one made with the same parameters."""
        root = Path(self.root)
        params = _params(self.num_samples, self.seed, self.image_size, self.num_objects)
        if not is_complete(root, params):
            generate_relational(root, self.num_samples, self.seed, self.image_size, self.num_objects)
