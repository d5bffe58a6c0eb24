"""The relational dataset: deterministic, balanced, decodable, and a label that is the drawn relation."""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmfuse.data import ImageDataModule, MultimodalDataModule, RelationalSource, TextDataModule
from mmfuse.data.sources.relational import COLOURS, LABELS, generate_relational

N = 80
SIZE = 32


def _rows(root: Path) -> list[dict[str, str]]:
    with (root / "manifest.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("relational") / "ds"
    generate_relational(root, num_samples=N, seed=0, image_size=SIZE, num_objects=4)
    return root


def dot_centre_x(pixels: np.ndarray, colour: str) -> float:
    """The mean x (pixel centres) of the pixels close to ``colour``: found from the picture alone."""
    distance = np.abs(pixels.astype(float) - np.array(COLOURS[colour])).max(axis=2)  # (S, S)
    _, xs = np.nonzero(distance < 45)  # jitter 20 + noise 15 < 45; other palette colours are >= 130 away
    assert 15 <= len(xs) <= 40, f"{colour}: {len(xs)} pixels"  # one dot of radius 3 (~29 px), not two
    return float(xs.mean() + 0.5)


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path, dataset: Path) -> None:
    again = tmp_path / "again"
    generate_relational(again, num_samples=N, seed=0, image_size=SIZE, num_objects=4)
    assert _digest(again) == _digest(dataset)
    other = tmp_path / "other"
    generate_relational(other, num_samples=N, seed=1, image_size=SIZE, num_objects=4)
    assert (other / "manifest.csv").read_bytes() != (dataset / "manifest.csv").read_bytes()


def test_labels_are_balanced_and_each_caption_is_as_often_true_as_false(tmp_path: Path) -> None:
    root = tmp_path / "big"
    generate_relational(root, num_samples=600, seed=3, image_size=SIZE, num_objects=4)
    rows = _rows(root)
    counts = Counter(r["label"] for r in rows)
    assert set(counts) == set(LABELS) and abs(counts["true"] - 300) < 45  # a fair coin: 3.7 sigma
    # the caption's colour pair alone does not tell the label: per named pair, both answers occur
    by_pair: dict[tuple[str, str], Counter[str]] = {}
    for r in rows:
        by_pair.setdefault((r["first"], r["second"]), Counter())[r["label"]] += 1
    common = [c for c in by_pair.values() if sum(c.values()) >= 15]
    assert common and all(min(c["true"], c["false"]) >= 3 for c in common)


def test_the_label_is_the_relation_drawn_in_the_image(dataset: Path) -> None:
    for row in _rows(dataset):
        pixels = np.asarray(Image.open(dataset / row["image"]).convert("RGB"))
        assert pixels.shape == (SIZE, SIZE, 3)
        words = row["text"].split()
        first, second = row["first"], row["second"]
        # the caption names the two colours in order, and "left of" between them
        assert words.index(first) < words.index("left") < words.index(second), row["text"]
        x_first, x_second = dot_centre_x(pixels, first), dot_centre_x(pixels, second)
        assert abs(x_first - float(row["first_x"])) < 1.0 and abs(x_second - float(row["second_x"])) < 1.0
        assert row["label"] == ("true" if x_first < x_second else "false"), row
        # four dots of distinct colours: the two named ones and two distractors
        present = [
            c for c in COLOURS if (np.abs(pixels.astype(float) - COLOURS[c]).max(axis=2) < 45).sum() > 10
        ]
        assert len(present) == 4 and {first, second} <= set(present)


def test_manifest_reads_through_the_multimodal_data_module(dataset: Path) -> None:
    source = RelationalSource(root=str(dataset), num_samples=N, image_size=SIZE)
    source.prepare()  # same parameters: kept, not regenerated
    dm = MultimodalDataModule(
        source,
        {
            "image": ImageDataModule(column="image", size=SIZE),
            "text": TextDataModule(column="text", max_length=32),
        },
        batch_size=8,
        num_workers=0,
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch.inputs["image"]["pixel_values"].shape == (8, 3, SIZE, SIZE)
    assert batch.inputs["text"]["input_ids"].shape[0] == 8
    truth = {r["id"]: LABELS.index(r["label"]) for r in _rows(dataset)}
    assert batch.targets["label"].tolist() == [truth[i] for i in batch.ids]
    assert dm.class_names == list(LABELS)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_samples": 5}, "num_samples=5"),
        ({"image_size": 24}, "image_size=24"),
        ({"num_objects": 7}, "num_objects=7"),
        ({"num_objects": 1}, "num_objects=1"),
    ],
)
def test_bad_parameters_fail_at_construction(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RelationalSource(**kwargs)
