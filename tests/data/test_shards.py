"""ShardSource (WebDataset tar shards) and `pack`: rows, decoding, problems by shard and member."""

from __future__ import annotations

import csv
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from mmfuse.commands.pack import pack
from mmfuse.data import AudioDataModule, ImageDataModule, ManifestSource, MultimodalDataModule, TextDataModule
from mmfuse.data.manifest.errors import DataError
from mmfuse.data.problems import check, write_problems
from mmfuse.data.sources.shards import ShardSource
from mmfuse.types import Batch
from tests.loopback import serve


def write_shard(path: Path, samples: list[dict[str, bytes]]) -> Path:
    """A tar shard: each sample's members ``{key}.{extension}`` in order (as img2dataset writes them)."""
    with tarfile.open(path, "w") as tar:
        for sample in samples:
            key = sample["__key__"].decode()
            for extension, data in sample.items():
                if extension != "__key__":
                    info = tarfile.TarInfo(f"{key}.{extension}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return path


def jpeg(seed: int, size: int = 12) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG")
    return out.getvalue()


def sample(key: str, label: str | None, text: str | None = "a caption", seed: int = 0) -> dict[str, bytes]:
    members = {"__key__": key.encode(), "jpg": jpeg(seed)}
    if text is not None:
        members["txt"] = text.encode()
    record = {"caption_len": 2, "url": f"https://example.com/{key}.jpg"}
    if label is not None:
        record["label"] = label
    members["json"] = json.dumps(record).encode()
    return members


@pytest.fixture
def img2dataset(tmp_path: Path) -> Path:
    """The img2dataset layout: train in two shards (one sample without text), val and test in one each."""
    write_shard(
        tmp_path / "train-000.tar", [sample(f"{i:04d}", "cat" if i % 2 else "dog", seed=i) for i in range(3)]
    )
    write_shard(
        tmp_path / "train-001.tar",
        [sample("0003", "dog", text=None, seed=3), sample("0004", "cat", seed=4)],
    )
    write_shard(tmp_path / "val-000.tar", [sample("0005", "cat", seed=5), sample("0006", "dog", seed=6)])
    write_shard(tmp_path / "test-000.tar", [sample("0009", "cat", seed=9)])
    return tmp_path


def test_img2dataset_shards_read_as_rows_and_decode_into_batches(img2dataset: Path) -> None:
    source = ShardSource(
        train=f"{img2dataset}/train-{{000..001}}.tar",
        val=f"{img2dataset}/val-000.tar",
        test=f"{img2dataset}/test-000.tar",
    )
    manifest = source.load()
    assert [(r.id, r.split) for r in manifest.rows] == [
        *((f"{i:04d}", "train") for i in range(5)),
        ("0005", "val"),
        ("0006", "val"),
        ("0009", "test"),
    ]
    assert manifest.classes == ["cat", "dog"]
    assert manifest.rows[3].cells["text"] == ""  # no txt member: the text modality is missing there
    assert manifest.rows[0].cells["text"] == "a caption" and manifest.rows[0].cells["caption_len"] == "2"

    data = MultimodalDataModule(
        source,
        {"image": ImageDataModule(size=12), "text": TextDataModule(vocab_size=16)},
        batch_size=8,
    )
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert isinstance(batch, Batch)
    order = [int(i) for i in batch.ids]
    assert sorted(order) == list(range(5))
    assert batch.present["text"].tolist() == [i != 3 for i in order]
    label = {0: "dog", 1: "cat", 2: "dog", 3: "dog", 4: "cat"}
    assert batch.targets["label"].tolist() == [["cat", "dog"].index(label[i]) for i in order]
    # the member decodes exactly as the same bytes do from a file
    (img2dataset / "0002.jpg").write_bytes(jpeg(2))
    expected = ImageDataModule(size=12).load("0002.jpg", img2dataset, train=False)["pixel_values"]
    assert torch.equal(batch.inputs["image"]["pixel_values"][order.index(2)], expected)


def test_problems_name_the_shard_member_and_key(img2dataset: Path) -> None:
    broken = sample("0007", "cat")
    broken["jpg"] = b"not an image"
    bad_json = sample("0008", "dog")
    bad_json["json"] = b"{not json"
    write_shard(img2dataset / "train-002.tar", [broken, bad_json, sample("0001", "cat")])  # 0001: again
    source = ShardSource(
        train=f"{img2dataset}/train-{{000..002}}.tar",
        val=f"{img2dataset}/val-000.tar",
        test=f"{img2dataset}/test-000.tar",
    )
    report = check(source, {"image": ImageDataModule(size=12), "text": TextDataModule()}, num_workers=0)
    shard = f"{img2dataset}/train-002.tar"
    found = {(p.sample_id, p.file, p.column) for p in report.problems}
    assert (("0007", f"{shard}:0007.jpg", "image")) in found
    assert (("0008", f"{shard}:0008.json", "json")) in found
    assert any(
        p.sample_id == "0001" and p.file == shard and "duplicate key" in p.reason for p in report.problems
    )
    # training stops on the same problem, by default; several patterns for one split
    write_shard(img2dataset / "train-003.tar", [broken])
    two = f"{img2dataset}/train-{{000..001}}.tar {img2dataset}/train-003.tar"
    source = ShardSource(train=two, val=source.val, test=source.test)
    data = MultimodalDataModule(source, {"image": ImageDataModule(size=12)}, on_bad_sample="error")
    data.setup("fit")
    with pytest.raises(DataError, match=r"train-003\.tar:0007\.jpg, row 6, id '0007', column 'image'"):
        for _ in data.train_dataloader():
            pass


def test_members_of_a_sample_must_be_adjacent(tmp_path: Path) -> None:
    first, second = sample("a", "cat"), sample("b", "dog")
    shard = write_shard(tmp_path / "s.tar", [{"__key__": b"a", "jpg": first["jpg"]}, second, first])
    problems: list[DataError] = []
    ShardSource(train=str(shard)).load(problems)
    assert len(problems) == 1 and problems[0].file == str(shard) and "not adjacent" in problems[0].reason


def _manifest_with_gaps(small_manifest: Path) -> Path:
    """The small manifest with text missing in one row and audio in another."""
    with small_manifest.open() as f:
        rows = list(csv.DictReader(f))
    rows[1]["text"], rows[9]["audio"] = "", ""
    with small_manifest.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return small_manifest


def _modalities() -> dict:
    return {
        "audio": AudioDataModule(sample_rate=8000, n_fft=128, hop_length=128, n_mels=8),
        "image": ImageDataModule(size=16, hflip=True, brightness=0.3),  # augmentation must replay
        "text": TextDataModule(vocab_size=32),
    }


def _batches(source: ManifestSource) -> dict[str, list[Batch]]:
    data = MultimodalDataModule(source, _modalities(), batch_size=3, seed=7)
    data.setup("fit")
    data.setup("test")
    loaders = {"train": data.train_dataloader(), "val": data.val_dataloader(), "test": data.test_dataloader()}
    return {split: list(loader) for split, loader in loaders.items()}


@pytest.mark.parametrize("resize_images", [False, True])
def test_pack_then_read_gives_the_manifests_batches(
    small_manifest: Path, tmp_path: Path, resize_images: bool
) -> None:
    manifest = ManifestSource(str(_manifest_with_gaps(small_manifest)))
    written = pack(
        manifest,
        _modalities(),
        str(tmp_path / "shards"),
        samples_per_shard=3,
        workers=0,
        resize_images=resize_images,
    )
    assert {split: count for split, (_, count) in written.items()} == {"train": 8, "val": 2, "test": 2}
    assert len(list((tmp_path / "shards").glob("train-*.tar"))) == 3  # 3 + 3 + 2: uneven shards
    config = yaml.safe_load((tmp_path / "shards" / "source.yaml").read_text())
    assert config["class_path"] == "mmfuse.data.sources.shards.ShardSource"
    # resized: the pixels themselves, read without decoding an image
    assert config["init_args"]["members"]["image.npy" if resize_images else "png"] == "image"
    shards = ShardSource(**config["init_args"])
    expected, got = _batches(manifest), _batches(shards)
    for split in ("train", "val", "test"):
        assert len(got[split]) == len(expected[split])
        for a, b in zip(expected[split], got[split], strict=True):
            assert a.ids == b.ids and a.present.keys() == b.present.keys()
            for name in a.present:
                assert torch.equal(a.present[name], b.present[name])
                for key, value in a.inputs[name].items():
                    # 16-px PNGs resized to 16 px: the stored 8-bit pixels are the originals
                    assert torch.equal(value, b.inputs[name][key]), (split, name, key)
            assert torch.equal(a.targets["label"], b.targets["label"])


def test_pack_names_the_row_of_a_missing_file(small_manifest: Path, tmp_path: Path) -> None:
    (small_manifest.parent / "media" / "3.png").unlink()
    with pytest.raises(DataError, match=r"row 4, id 's3', column 'image'"):
        pack(ManifestSource(str(small_manifest)), _modalities(), str(tmp_path / "out"), workers=0)


def test_a_shard_source_needs_a_split() -> None:
    with pytest.raises(ValueError, match="at least one split"):
        ShardSource()


def _pixels(rows: list) -> list[torch.Tensor]:
    image = ImageDataModule(size=12)
    return [image.load_bytes(*row.read("image"), train=False)["pixel_values"] for row in rows]


def test_shards_over_http_read_as_local_ones(img2dataset: Path) -> None:
    local = ShardSource(train=f"{img2dataset}/train-{{000..001}}.tar", val=f"{img2dataset}/val-000.tar")
    expected = local.load().rows
    with serve(img2dataset) as server:
        remote = ShardSource(train=f"{server.url}/train-{{000..001}}.tar", val=f"{server.url}/val-000.tar")
        rows = remote.load().rows
        pixels = _pixels(rows)  # each member by a ranged GET
    assert [(r.id, r.cells) for r in rows] == [(r.id, r.cells) for r in expected]
    assert all(torch.equal(a, b) for a, b in zip(pixels, _pixels(expected), strict=True))
    assert rows[0].shard.startswith("http://127.0.0.1")  # type: ignore[attr-defined]


def test_skip_mode_on_shards_counts_every_sample_and_lists_the_skipped_keys(
    img2dataset: Path, tmp_path: Path
) -> None:
    broken = sample("0007", "cat")
    broken["jpg"] = b"not an image"
    bad_json = sample("0008", "dog")
    bad_json["json"] = b"[1, 2]"
    write_shard(img2dataset / "train-002.tar", [broken, sample("0010", "dog", seed=10), bad_json])
    source = ShardSource(
        train=f"{img2dataset}/train-{{000..002}}.tar",
        val=f"{img2dataset}/val-000.tar",
        test=f"{img2dataset}/test-000.tar",
    )
    data = MultimodalDataModule(source, {"image": ImageDataModule(size=12)}, on_bad_sample="skip")
    data.setup("fit")
    assert data.selection.accounting()["train"] == {"rows": 8, "used": 6, "skipped": 2}
    used = sorted(i for batch in data.train_dataloader() for i in batch.ids)
    assert used == ["0000", "0001", "0002", "0003", "0004", "0010"]
    path = write_problems(tmp_path / "skipped.csv", data.selection.skipped())
    with path.open() as f:
        listed = {(r["id"], r["file"]) for r in csv.DictReader(f)}
    shard = f"{img2dataset}/train-002.tar"
    assert listed == {("0007", f"{shard}:0007.jpg"), ("0008", f"{shard}:0008.json")}
