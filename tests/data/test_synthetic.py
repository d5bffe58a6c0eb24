"""The synthetic quickstart dataset: deterministic, decodable, regenerated only when needed, and a
label that really needs all three modalities."""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from mmfuse.data.sources.synthetic import (
    ACTIVE_WORDS,
    CUE_COLUMNS,
    GENERATOR_VERSION,
    INACTIVE_WORDS,
    LABELS,
    TONE_COLUMN,
    SyntheticSource,
    draw_bits,
    draw_tone_missing,
    generate,
)

N = 60
SIZE = 32
RATE = 8000


def _rows(root: Path) -> list[dict[str, str]]:
    with (root / "manifest.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "ds"
    generate(root, num_samples=N, seed=0, image_size=SIZE, sample_rate=RATE)
    return root


# --- recovering the hidden bits from the files, without learning -----------------------------


def image_bit(path: Path) -> bool:
    """Circle or square, independent of rotation: a circle fills pi R^2 (R = farthest shape pixel
    from the centroid), an equal-area square only 2/pi of it."""
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(float)
    ys, xs = np.nonzero(pixels.max(axis=2) > 140)  # the shape is bright, the background dark
    r_max = np.sqrt((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2).max()
    return len(ys) / (np.pi * r_max**2) > 0.9  # at 32 px: circles >= 0.95, squares <= 0.85


def text_bit(text: str) -> bool:
    words = text.split()
    active = [w for w in words if w in ACTIVE_WORDS]
    inactive = [w for w in words if w in INACTIVE_WORDS]
    assert len(active) + len(inactive) == 1, text
    return bool(active)


def audio_bit(path: Path) -> bool:
    wave, rate = sf.read(path)
    spectrum = np.abs(np.fft.rfft(wave))
    return bool(np.fft.rfftfreq(len(wave), 1 / rate)[spectrum.argmax()] > 900)


# --- tests -------------------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path, dataset: Path) -> None:
    again = generate(tmp_path / "again", num_samples=N, seed=0, image_size=SIZE, sample_rate=RATE).parent
    other = generate(tmp_path / "other", num_samples=N, seed=1, image_size=SIZE, sample_rate=RATE).parent
    assert (again / "manifest.csv").read_bytes() == (dataset / "manifest.csv").read_bytes()
    assert (other / "manifest.csv").read_bytes() != (dataset / "manifest.csv").read_bytes()
    for name in ("images/000000.png", "images/000037.png", "audio/000000.wav", "audio/000059.wav"):
        assert (again / name).read_bytes() == (dataset / name).read_bytes(), name
        assert (other / name).read_bytes() != (dataset / name).read_bytes(), name


def test_files_decode_with_the_right_size_and_rate(dataset: Path) -> None:
    rows = _rows(dataset)
    assert [r["id"] for r in rows] == [f"{i:06d}" for i in range(N)]
    frames = set()
    for row in rows:
        with Image.open(dataset / row["image"]) as image:
            assert image.size == (SIZE, SIZE) and image.mode == "RGB"
        info = sf.info(str(dataset / row["audio"]))
        assert info.samplerate == RATE and info.channels == 1 and info.subtype == "PCM_16"
        assert 0.5 * RATE <= info.frames <= RATE
        frames.add(info.frames)
        assert 7 <= len(row["text"].split()) <= 13
    assert len(frames) > N // 2  # durations vary, so batches need padding


def test_splits_are_70_15_15(dataset: Path) -> None:
    assert Counter(r["split"] for r in _rows(dataset)) == {"train": 42, "val": 9, "test": 9}


def test_label_is_the_number_of_active_cues(dataset: Path) -> None:
    seen: Counter[bool] = Counter()
    for row in _rows(dataset):
        bits = (image_bit(dataset / row["image"]), text_bit(row["text"]), audio_bit(dataset / row["audio"]))
        assert row["label"] == LABELS[sum(bits)], (row["id"], bits)
        seen.update(bits)
    assert seen[True] > N and seen[False] > N  # both cue values occur in the files


def test_extra_targets_match_the_generators_truth(dataset: Path) -> None:
    rows = _rows(dataset)
    for row in rows:
        bits = (image_bit(dataset / row["image"]), text_bit(row["text"]), audio_bit(dataset / row["audio"]))
        assert [row[c] for c in CUE_COLUMNS] == [str(int(b)) for b in bits], row["id"]
        if row[TONE_COLUMN] == "":
            continue
        wave, rate = sf.read(dataset / row["audio"])
        spectrum = np.abs(np.fft.rfft(wave))
        peak = np.fft.rfftfreq(len(wave), 1 / rate)[spectrum.argmax()]
        assert abs(float(row[TONE_COLUMN]) * 1000 - peak) <= 1.5 * rate / len(wave), row["id"]  # 1.5 bins
    empty = [r[TONE_COLUMN] == "" for r in rows]
    assert empty == draw_tone_missing(N, seed=0).tolist() and 2 <= sum(empty) <= 12  # ~10% of 60


def test_media_and_label_are_those_of_generator_version_1(dataset: Path) -> None:
    # the digest of version 1's files and columns (before the target columns were added): the README's
    # results were measured on them
    h = hashlib.sha256()
    for row in _rows(dataset):
        h.update(repr([row[c] for c in ("id", "split", "image", "text", "audio", "label")]).encode())
        h.update((dataset / row["image"]).read_bytes())
        h.update((dataset / row["audio"]).read_bytes())
    assert h.hexdigest() == "745875ac17cb539b1fc184ead173d600079dba0a420031f38d1b8c599eb680c7"


def _best_guess_accuracy(bits: np.ndarray, labels: np.ndarray, columns: list[int]) -> float:
    """Accuracy of predicting the most frequent label for each value of the given bits."""
    keys = [tuple(b) for b in bits[:, columns]]
    correct = 0
    for key in set(keys):
        idx = [i for i, k in enumerate(keys) if k == key]
        correct += Counter(labels[idx].tolist()).most_common(1)[0][1]
    return correct / len(labels)


def test_only_all_three_modalities_beat_half() -> None:
    # one known bit leaves label = bit + Binomial(2, 1/2); two known bits leave label = sum + a coin:
    # either way the best guess is right half the time
    bits = draw_bits(2000, seed=0)
    labels = bits.sum(axis=1)
    assert 0.45 < bits.mean() < 0.55
    for m in range(3):
        assert 0.45 <= _best_guess_accuracy(bits, labels, [m]) <= 0.55
    for pair in ([0, 1], [0, 2], [1, 2]):
        assert 0.45 <= _best_guess_accuracy(bits, labels, pair) <= 0.55
    assert _best_guess_accuracy(bits, labels, [0, 1, 2]) == 1.0


def test_source_loads_through_the_manifest(tmp_path: Path) -> None:
    source = SyntheticSource(root=str(tmp_path / "ds"), num_samples=N, image_size=SIZE, sample_rate=RATE)
    source.prepare()
    manifest = source.load()
    assert manifest.classes == ["zero", "one", "two", "three"]
    assert [len(manifest.split(s)) for s in ("train", "val", "test")] == [42, 9, 9]
    assert manifest.root == tmp_path / "ds"


def test_prepare_regenerates_only_when_needed(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    source = SyntheticSource(root=str(root), num_samples=N, image_size=SIZE, sample_rate=RATE)
    source.prepare()
    params = json.loads((root / "params.json").read_text())
    assert params["version"] == GENERATOR_VERSION and params["num_samples"] == N
    sentinel = root / "sentinel"
    sentinel.touch()  # a regeneration replaces the whole folder, so this disappears

    SyntheticSource(root=str(root), num_samples=N, image_size=SIZE, sample_rate=RATE).prepare()
    assert sentinel.exists()

    SyntheticSource(root=str(root), num_samples=N, seed=5, image_size=SIZE, sample_rate=RATE).prepare()
    assert not sentinel.exists()
    assert json.loads((root / "params.json").read_text())["seed"] == 5

    sentinel.touch()
    (root / "manifest.csv").unlink()
    SyntheticSource(root=str(root), num_samples=N, seed=5, image_size=SIZE, sample_rate=RATE).prepare()
    assert (root / "manifest.csv").is_file() and not sentinel.exists()

    (root / "params.json").write_text(json.dumps({**params, "version": GENERATOR_VERSION - 1}))
    sentinel.touch()
    SyntheticSource(root=str(root), num_samples=N, image_size=SIZE, sample_rate=RATE).prepare()
    assert not sentinel.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no temporary folders left over


def test_an_existing_identical_dataset_is_kept(tmp_path: Path) -> None:
    # what a second process sees when the first one published the same dataset during its run
    root = tmp_path / "ds"
    generate(root, num_samples=N, seed=0, image_size=SIZE, sample_rate=RATE)
    (root / "sentinel").touch()
    generate(root, num_samples=N, seed=0, image_size=SIZE, sample_rate=RATE)
    assert (root / "sentinel").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_refuses_to_replace_a_folder_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not a synthetic dataset"):
        generate(tmp_path, num_samples=N, seed=0, image_size=SIZE, sample_rate=RATE)
    assert (tmp_path / "mine.txt").read_text() == "precious"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_samples": 3}, "num_samples"),
        ({"seed": -1}, "seed"),
        ({"image_size": 16}, "image_size"),
        ({"sample_rate": 4000}, "sample_rate"),
    ],
)
def test_bad_parameters_fail_at_construction(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SyntheticSource(**kwargs)  # type: ignore[arg-type]
