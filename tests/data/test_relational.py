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
    # the named colour alone does not tell the label: per colour, both answers about equally often
    by_colour: dict[str, Counter[str]] = {}
    for r in rows:
        by_colour.setdefault(r["colour"], Counter())[r["label"]] += 1
    assert sorted(by_colour) == sorted(COLOURS)
    assert all(min(c["true"], c["false"]) >= 0.3 * sum(c.values()) for c in by_colour.values())


def test_the_label_is_the_relation_drawn_in_the_image(dataset: Path) -> None:
    for row in _rows(dataset):
        pixels = np.asarray(Image.open(dataset / row["image"]).convert("RGB"))
        assert pixels.shape == (SIZE, SIZE, 3)
        colour = row["colour"]
        # the caption names the colour and states "on the left"
        words = row["text"].split()
        assert words.index(colour) < words.index("left"), row["text"]
        assert not set(words) & (set(COLOURS) - {colour}), row["text"]  # no other colour is named
        x = dot_centre_x(pixels, colour)
        assert abs(x - float(row["x"])) < 1.0
        assert row["label"] == ("true" if x < SIZE / 2 else "false"), row
        # four dots of distinct colours: the named one and three distractors, all away from the borders
        present = [
            c for c in COLOURS if (np.abs(pixels.astype(float) - COLOURS[c]).max(axis=2) < 45).sum() > 10
        ]
        assert len(present) == 4 and colour in present
        assert all(0.3 * SIZE - 1 <= dot_centre_x(pixels, c) <= 0.7 * SIZE + 1 for c in present)


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
        ({"num_objects": 5}, "num_objects=5"),
        ({"num_objects": 0}, "num_objects=0"),
    ],
)
def test_bad_parameters_fail_at_construction(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RelationalSource(**kwargs)
