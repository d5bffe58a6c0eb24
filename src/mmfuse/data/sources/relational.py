"""The relational dataset: image + caption pairs whose label is a relation *between* the modalities.

Each image shows ``num_objects`` coloured dots (distinct colours from :data:`COLOURS`) at random
positions on a dark noisy background. The caption names two of those colours and a relation,
``"... the red dot is left of the blue dot ..."``; the label says whether it holds in the image
(``true`` / ``false``, fair coins). Neither modality alone says anything about the label: every
caption is as often true as false, and every image makes as many true statements as false ones.

What it tests: to answer, a model must find *the two named dots* in the image and compare their
positions. A fuser that pools each modality to one vector first (concat, late, gated) gets, from
the image, a summary that does not know which dots will be asked about; to answer every possible
question it would have to store every colour's position, and a convolutional encoder's mean-pooled
features hardly hold positions at all (its tokens' position embeddings average out). A token-level
fuser lets the caption's colour words attend to the image tokens of their dots and read those
tokens' positions. The quickstart cannot tell fusers apart (each modality carries an independent
bit); this dataset is built to.

The files and the manifest are the quickstart's formats (PNG images, text in the manifest), so the
same modality DataModules decode them. Columns: ``id, split, image, text, label``, and for
inspection the named colours ``first``/``second`` and their dots' centres ``first_x``/``second_x``
(pixels from the left edge).
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmfuse.data.manifest.manifest import ManifestSource
from mmfuse.data.manifest.tasks import Task
from mmfuse.data.sources.synthetic import (
    MANIFEST_FILE,
    NEUTRAL_WORDS,
    _is_complete,
    _rng,
    draw_splits,
    staged_dataset,
)

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
MIN_DX = 6.0  # between the two named dots' x: "left of" is never a close call
NOUNS = ("dot", "spot", "blob")
# the generator's random streams (SeedSequence spawn keys); distinct from the quickstart's 1..7
_TRUTH, _IMAGE, _TEXT = 11, 12, 13


def draw_truth(num_samples: int, seed: int) -> np.ndarray:
    """``(num_samples,)`` bool: whether each sample's caption holds (fair coins)."""
    return _rng(seed, _TRUTH).integers(0, 2, size=num_samples).astype(bool)


def _positions(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``(n, 2)`` dot centres (x, y), pairwise at least :data:`MIN_DISTANCE` apart, inside the image;
    the first two (the named dots) at least :data:`MIN_DX` apart in x."""
    margin = DOT_RADIUS + 1
    while True:  # rejection sampling: with the checked sizes almost every draw is accepted
        xy = rng.uniform(margin, size - margin, size=(n, 2))
        gaps = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(n) * size  # (n, n)
        if gaps.min() >= MIN_DISTANCE and abs(xy[0, 0] - xy[1, 0]) >= MIN_DX:
            return xy


def draw_scene(
    rng: np.random.Generator, truth: bool, size: int, num_objects: int
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """One sample's image and what it shows.

    Returns:
        the image ``(S, S, 3)`` uint8, the dots' colour names (the first two are the caption's
        ``first`` and ``second``) and their centres ``(num_objects, 2)`` as (x, y) pixels, with
        ``x[0] < x[1]`` exactly when ``truth``.
    """
    names = [str(c) for c in rng.choice(list(COLOURS), size=num_objects, replace=False)]
    xy = _positions(rng, num_objects, size)
    if (xy[0, 0] < xy[1, 0]) != truth:
        xy[[0, 1]] = xy[[1, 0]]  # swap the named dots' places: same picture statistics, other answer
    background = rng.uniform(0, 50, size=3)
    pixels = np.broadcast_to(background, (size, size, 3)).copy()  # (S, S, 3)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5  # pixel centres, (S, S) each
    for name, (cx, cy) in zip(names, xy, strict=True):
        colour = np.clip(np.array(COLOURS[name]) + rng.uniform(-20, 20, size=3), 0, 255)
        dot = (xx - cx) ** 2 + (yy - cy) ** 2 <= DOT_RADIUS**2  # (S, S)
        pixels[dot] = colour
    pixels += np.clip(rng.normal(0, 6, size=(size, size, 3)), -15, 15)
    return np.clip(pixels, 0, 255).round().astype(np.uint8), names, xy


def caption(rng: np.random.Generator, first: str, second: str) -> str:
    """``"<filler> the <first> <noun> is left of the <second> <noun> <filler>"``, 0-3 filler words each
    side, so that the colour words are found by meaning, not at fixed positions."""
    noun = NOUNS[int(rng.integers(len(NOUNS)))]
    before = [NEUTRAL_WORDS[k] for k in rng.integers(0, len(NEUTRAL_WORDS), size=int(rng.integers(0, 4)))]
    after = [NEUTRAL_WORDS[k] for k in rng.integers(0, len(NEUTRAL_WORDS), size=int(rng.integers(0, 4)))]
    core = ["the", first, noun, "is", "left", "of", "the", second, noun]
    return " ".join([*before, *core, *after])


def _params(num_samples: int, seed: int, image_size: int, num_objects: int) -> dict[str, Any]:
    if num_samples < 10:
        raise ValueError(f"num_samples={num_samples}: need at least 10 so that val and test are not empty")
    if seed < 0:
        raise ValueError(f"seed={seed} must be >= 0")
    if image_size < 32:
        raise ValueError(f"image_size={image_size} must be >= 32: the dots need room to stay apart")
    if not 2 <= num_objects <= min(len(COLOURS), (image_size // 16) ** 2 + 2):
        raise ValueError(
            f"num_objects={num_objects} must be in 2..{min(len(COLOURS), (image_size // 16) ** 2 + 2)} "
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
            writer.writerow(
                ["id", "split", "image", "text", "label", "first", "second", "first_x", "second_x"]
            )
            for i in range(num_samples):
                sample_id = f"{i:06d}"
                image_path = f"images/{sample_id}.png"
                image, names, xy = draw_scene(_rng(seed, _IMAGE, i), bool(truth[i]), image_size, num_objects)
                Image.fromarray(image, "RGB").save(tmp / image_path)
                text = caption(_rng(seed, _TEXT, i), names[0], names[1])
                label = LABELS[int(truth[i])]
                row = [sample_id, splits[i], image_path, text, label, names[0], names[1]]
                writer.writerow([*row, f"{xy[0, 0]:.2f}", f"{xy[1, 0]:.2f}"])
    return root / MANIFEST_FILE


class RelationalSource(ManifestSource):
    """Image + caption pairs whose label is whether the caption's spatial relation holds in the image.

    The caption names two of the image's coloured dots, "the red dot is left of the blue dot"; the
    label (``false``/``true``, balanced) needs both modalities *and* which dot is where, so a fuser
    that pools each modality before combining them stays near chance while token-level fusion can
    solve it (see ``configs/experiments/relational.yaml`` and ``docs/fusion.md``).

    Args:
        root: folder the dataset is written to (``manifest.csv``, ``images/``, ``params.json``).
        num_samples: number of samples (70% train, 15% val, 15% test).
        seed: random seed; the same parameters always generate byte-identical files.
        image_size: width and height of the square RGB images, in pixels (at least 32).
        num_objects: dots per image, each a different colour; two are named, the rest distract.
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
        if not _is_complete(root, params):
            generate_relational(root, self.num_samples, self.seed, self.image_size, self.num_objects)
