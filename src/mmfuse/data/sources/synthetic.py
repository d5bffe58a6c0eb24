"""The quickstart dataset: paired image + text + audio samples whose label needs all three.

Each modality carries one hidden bit (a cue is "active" or not), drawn as independent fair coins
per sample, and the label is the number of active cues, as a class name (``zero`` .. ``three``).
Any one or two modalities predict the label with at most 50% accuracy (each unseen bit is still a
fair coin), all three with 100%: the gap between partial and full fusion is the point of the demo.

- image: a bright shape on a dark noisy background; active = circle, inactive = square of equal area.
- text: 6-12 neutral filler words with one cue word inserted; active = an alarm word, else a calm word.
- audio: 0.5-1.0 s of sine tone plus noise; active = high pitch (1200-2400 Hz), else low (200-500 Hz).

The samples are written as real PNG / WAV files and a ``manifest.csv``, so the quickstart runs the
same decoding path as user data. Beside ``label`` the manifest has targets for multitask learning
(``configs/experiments/multitask.yaml``), drawn from the same truth:

- ``cue_image``, ``cue_text``, ``cue_audio``: the three hidden bits as 0/1 (a multilabel target);
- ``tone_khz``: the audio tone's frequency in kHz (a regression target), empty in ~10% of the rows
  (at random, :data:`TONE_MISSING`), so that masking of missing targets is exercised.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from PIL import Image

from mmfuse.data.manifest.source import ManifestSource
from mmfuse.data.manifest.tasks import Task
from mmfuse.data.sources.staging import MANIFEST_FILE, is_complete, staged_dataset

#: bump whenever the output for the same parameters changes, so ``prepare()`` regenerates old copies
GENERATOR_VERSION = 2  # 2: the cue_* and tone_khz target columns (the media files are unchanged)
LABELS = ("zero", "one", "two", "three")  # the class order too: by meaning, not alphabetical
MODALITIES = ("image", "text", "audio")  # column order of the bits returned by draw_bits
CUE_COLUMNS = tuple(f"cue_{m}" for m in MODALITIES)  # the bits as 0/1 target columns
TONE_COLUMN = "tone_khz"
TONE_MISSING = 0.1  # share of rows whose tone_khz cell is left empty
NEUTRAL_WORDS = (
    "the", "a", "report", "from", "station", "north", "south", "east", "west", "today",
    "sensor", "shows", "was", "is", "at", "near", "in", "on", "of", "this",
    "morning", "evening", "unit", "reading", "level", "river", "bridge", "road", "tower", "building",
    "area", "team", "said", "recorded", "during", "shift", "after", "update", "local", "zone",
)  # fmt: skip
ACTIVE_WORDS = ("alarm", "siren", "fire", "danger", "alert", "smoke")
INACTIVE_WORDS = ("calm", "quiet", "clear", "normal", "steady", "safe")
HIGH_HZ = (1200.0, 2400.0)
LOW_HZ = (200.0, 500.0)
SPLIT_FRACTIONS = {"val": 0.15, "test": 0.15}  # the rest is train

# independent random streams of one seed (SeedSequence spawn keys): the bits, the splits, and each
# sample's image / text / audio, so changing how one is drawn leaves the others byte-identical, and a
# sample's files do not depend on num_samples
_BITS, _SPLIT, _IMAGE, _TEXT, _AUDIO = 1, 2, 3, 4, 5
_TONE_MISSING = 7  # synthetic_graph.py draws its graphs from stream 6


def _rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, index)))


def draw_bits(num_samples: int, seed: int) -> np.ndarray:
    """The hidden cue bits: ``(num_samples, 3)`` bool, columns in :data:`MODALITIES` order.

    The label of sample ``i`` is ``LABELS[bits[i].sum()]``.
    """
    return _rng(seed, _BITS).integers(0, 2, size=(num_samples, 3)).astype(bool)


def draw_splits(num_samples: int, seed: int) -> list[str]:
    """15% val, 15% test (rounded), the rest train, at seeded random positions."""
    n_val = round(SPLIT_FRACTIONS["val"] * num_samples)
    n_test = round(SPLIT_FRACTIONS["test"] * num_samples)
    order = _rng(seed, _SPLIT).permutation(num_samples)
    splits = ["train"] * num_samples
    for i in order[:n_val]:
        splits[i] = "val"
    for i in order[n_val : n_val + n_test]:
        splits[i] = "test"
    return splits


def _image(rng: np.random.Generator, active: bool, size: int) -> np.ndarray:
    r = rng.uniform(size / 5, size / 3.5)
    # the equal-area square's half-diagonal is ~1.25 r; the same margin for both shapes keeps the
    # position from telling them apart
    margin = 1.26 * r
    cx, cy = rng.uniform(margin, size - margin, size=2)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5  # pixel centres, (S, S) each
    dx, dy = xx - cx, yy - cy
    if active:
        mask = dx**2 + dy**2 <= r**2
    else:
        half = r * np.sqrt(np.pi) / 2  # side**2 == pi r**2: equal area, so mean brightness says nothing
        angle = rng.uniform(0, np.pi / 2)
        u = dx * np.cos(angle) + dy * np.sin(angle)
        v = -dx * np.sin(angle) + dy * np.cos(angle)
        mask = np.maximum(np.abs(u), np.abs(v)) <= half
    background = rng.uniform(0, 60, size=3)
    colour = rng.uniform(100, 255, size=3)
    colour[rng.integers(3)] = rng.uniform(200, 255)  # one strong channel: bright-ish in any hue
    # clipped noise keeps shape and background separable by a brightness threshold (tests rely on it)
    noise = np.clip(rng.normal(0, 8, size=(size, size, 3)), -20, 20)
    pixels = np.where(mask[..., None], colour, background) + noise  # (S, S, 3)
    return np.clip(pixels, 0, 255).round().astype(np.uint8)


def _text(rng: np.random.Generator, active: bool) -> str:
    words = [NEUTRAL_WORDS[k] for k in rng.integers(0, len(NEUTRAL_WORDS), size=int(rng.integers(6, 13)))]
    cues = ACTIVE_WORDS if active else INACTIVE_WORDS
    # no capitals or punctuation: any tokenizer (even whitespace split) sees the cue as one token
    words.insert(int(rng.integers(0, len(words) + 1)), cues[int(rng.integers(len(cues)))])
    return " ".join(words)


def draw_tone_missing(num_samples: int, seed: int) -> np.ndarray:
    """``(num_samples,)`` bool: the rows whose ``tone_khz`` cell is left empty (~:data:`TONE_MISSING`)."""
    return _rng(seed, _TONE_MISSING).random(num_samples) < TONE_MISSING


def _audio(rng: np.random.Generator, active: bool, sample_rate: int) -> tuple[np.ndarray, float]:
    """The clip ``(n,)`` and its tone's frequency in Hz."""
    # lengths vary so that batches need padding and the encoders' masks are exercised
    n = int(rng.uniform(0.5, 1.0) * sample_rate)
    freq = rng.uniform(*(HIGH_HZ if active else LOW_HZ))
    t = np.arange(n) / sample_rate
    tone = rng.uniform(0.3, 0.8) * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
    # 20 ms ramps: a hard edge is a broadband click, pitch-independent noise in both classes
    fade = min(n // 2, int(0.02 * sample_rate))
    envelope = np.ones(n)
    envelope[:fade] = np.linspace(0, 1, fade)
    envelope[n - fade :] = np.linspace(1, 0, fade)
    wave = tone * envelope + rng.normal(0, 0.05, size=n)
    return np.clip(wave, -1, 1).astype(np.float32), float(freq)  # (n,), Hz


def _params(num_samples: int, seed: int, image_size: int, sample_rate: int) -> dict[str, Any]:
    if num_samples < 10:
        raise ValueError(f"num_samples={num_samples}: need at least 10 so that val and test are not empty")
    if seed < 0:
        raise ValueError(f"seed={seed} must be >= 0")
    if image_size < 24:
        raise ValueError(f"image_size={image_size} must be >= 24: smaller circles and squares blur together")
    if sample_rate < 6000:
        raise ValueError(
            f"sample_rate={sample_rate} must be >= 6000: the high tones reach {HIGH_HZ[1]:.0f} Hz"
        )
    return {
        "generator": __name__,
        "version": GENERATOR_VERSION,
        "num_samples": num_samples,
        "seed": seed,
        "image_size": image_size,
        "sample_rate": sample_rate,
    }


def generate(root: str | Path, num_samples: int, seed: int, image_size: int, sample_rate: int) -> Path:
    """Write the dataset to ``root`` (replacing an older synthetic dataset there) and return the manifest.

    Everything is written to a temporary sibling folder that is renamed into place at the end, so an
    interrupted run never leaves a dataset that looks complete.

    Raises:
        ValueError: a parameter out of range.
        FileExistsError: ``root`` exists and holds something other than a synthetic dataset.
    """
    root = Path(root)
    params = _params(num_samples, seed, image_size, sample_rate)
    with staged_dataset(root, params, "samples", ["images", "audio"]) as tmp:
        bits = draw_bits(num_samples, seed)
        splits = draw_splits(num_samples, seed)
        tone_missing = draw_tone_missing(num_samples, seed)
        with (tmp / MANIFEST_FILE).open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["id", "split", *MODALITIES, "label", *CUE_COLUMNS, TONE_COLUMN])
            for i in range(num_samples):
                sample_id = f"{i:06d}"
                image_path, audio_path = f"images/{sample_id}.png", f"audio/{sample_id}.wav"
                image = _image(_rng(seed, _IMAGE, i), bool(bits[i, 0]), image_size)
                Image.fromarray(image, "RGB").save(tmp / image_path)
                text = _text(_rng(seed, _TEXT, i), bool(bits[i, 1]))
                wave, freq = _audio(_rng(seed, _AUDIO, i), bool(bits[i, 2]), sample_rate)
                sf.write(tmp / audio_path, wave, sample_rate, subtype="PCM_16")
                label = LABELS[int(bits[i].sum())]
                cues = [str(int(b)) for b in bits[i]]
                tone = "" if tone_missing[i] else f"{freq / 1000:.4f}"
                writer.writerow([sample_id, splits[i], image_path, text, audio_path, label, *cues, tone])
    return root / MANIFEST_FILE


class SyntheticSource(ManifestSource):
    """The quickstart dataset: generated on first use, then read like any manifest.

    Each sample has an image (circle or square), a sentence (an alarm or a calm word) and a tone
    (high or low pitch); the label is how many of the three cues are "active", so no one or two
    modalities predict it better than 50% and only fusing all three reaches 100%.

    Args:
        root: folder the dataset is written to (``manifest.csv``, ``images/``, ``audio/``, ``params.json``).
        num_samples: number of samples (70% train, 15% val, 15% test).
        seed: random seed; the same parameters always generate byte-identical files.
        image_size: width and height of the square RGB images, in pixels (at least 24).
        sample_rate: audio sample rate in Hz (at least 6000).
        tasks: the targets to learn (default: ``label`` alone). The manifest also has the multilabel
            ``cue_image``/``cue_text``/``cue_audio`` (0/1) and the regression ``tone_khz`` columns:
            see ``configs/experiments/multitask.yaml``.

    The ``label`` classes come in their meaning's order, ``zero, one, two, three`` (class index =
    number of active cues), unless a task's ``classes`` says otherwise.
    """

    def __init__(
        self,
        root: str = "data/synthetic",
        num_samples: int = 3000,
        seed: int = 0,
        image_size: int = 32,
        sample_rate: int = 8000,
        tasks: list[Task] | None = None,
    ) -> None:
        _params(num_samples, seed, image_size, sample_rate)  # fail at config time, not in prepare
        classes = None if tasks is not None else list(LABELS)
        super().__init__(path=str(Path(root) / MANIFEST_FILE), target="label", classes=classes, tasks=tasks)
        self.root = root
        self.num_samples = num_samples
        self.seed = seed
        self.image_size = image_size
        self.sample_rate = sample_rate

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
        params = _params(self.num_samples, self.seed, self.image_size, self.sample_rate)
        if not is_complete(root, params):
            generate(root, self.num_samples, self.seed, self.image_size, self.sample_rate)
