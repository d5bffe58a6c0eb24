"""Flickr30k and COCO caption converters: Karpathy's split file + the image folders -> manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import write_png
from tests.prepare.conftest import check_data, load_script, read_rows

SPLITS = ["train", "train", "restval", "val", "val", "test", "test"]


def karpathy(dataset: str, images: list[dict[str, object]]) -> dict[str, object]:
    entries = []
    for i, (split, image) in enumerate(zip(SPLITS, images, strict=True)):
        captions = [f"picture {i} caption {k}" for k in range(5 if i != 1 else 3)]  # not always 5
        sentences = [
            {"raw": t + " ", "tokens": t.split(), "sentid": 5 * i + k, "imgid": i}
            for k, t in enumerate(captions)
        ]
        entries.append(
            {
                **image,
                "imgid": i,
                "split": split,
                "sentences": sentences,
                "sentids": [s["sentid"] for s in sentences],
            }
        )
    return {"dataset": dataset, "images": entries}


def write_flickr(root: Path) -> Path:
    names = [f"{1000092795 + i}.jpg" for i in range(len(SPLITS))]
    for i, name in enumerate(names):
        write_png(root / "flickr30k-images" / name, seed=i)  # PNG bytes under .jpg: Pillow reads by content
    (root / "dataset_flickr30k.json").write_text(
        json.dumps(karpathy("flickr30k", [{"filename": n} for n in names]))
    )
    return root


def test_flickr30k(tmp_path: Path) -> None:
    root, out = write_flickr(tmp_path / "download"), tmp_path / "flickr30k"
    assert load_script("flickr30k").main(["--root", str(root), "--out", str(out)]) == 0
    rows = read_rows(out / "manifest.jsonl")
    train = [r for r in rows if r["split"] == "train"]
    assert len(train) == 5 + 3 + 5  # a training image gives a row per caption; restval is train
    assert train[0] == {
        "id": "1000092795-0",
        "split": "train",
        "image": "flickr30k-images/1000092795.jpg",
        "text": "picture 0 caption 0",
    }
    held_out = [(r["id"], r["split"], r["text"]) for r in rows if r["split"] != "train"]
    assert held_out == [
        ("1000092798-0", "val", "picture 3 caption 0"),  # val and test: the first caption only
        ("1000092799-0", "val", "picture 4 caption 0"),
        ("1000092800-0", "test", "picture 5 caption 0"),
        ("1000092801-0", "test", "picture 6 caption 0"),
    ]
    assert (out / rows[-1]["image"]).is_file()
    check_data("configs/benchmarks/flickr30k.yaml", out / "manifest.jsonl")
    load_script("flickr30k").main(["--root", str(root), "--out", str(out), "--eval_captions", "all"])
    assert sum(r["split"] == "test" for r in read_rows(out / "manifest.jsonl")) == 10


def test_coco_reads_both_image_folders(tmp_path: Path) -> None:
    root, images = tmp_path / "download", []
    for i in range(len(SPLITS)):
        folder = "train2014" if i < 2 else "val2014"  # Karpathy's val/test/restval come from val2014
        name = f"COCO_{folder}_{i:012d}.jpg"
        write_png(root / folder / name, seed=i)
        images.append({"filepath": folder, "filename": name, "cocoid": 391895 + i})
    (root / "dataset_coco.json").write_text(json.dumps(karpathy("coco", images)))
    out = tmp_path / "coco"
    assert load_script("coco_captions").main(["--root", str(root), "--out", str(out)]) == 0
    rows = read_rows(out / "manifest.jsonl")
    assert rows[0]["id"] == "391895-0" and rows[0]["image"] == "train2014/COCO_train2014_000000000000.jpg"
    assert [r["image"] for r in rows if r["split"] == "test"] == [
        "val2014/COCO_val2014_000000000005.jpg",
        "val2014/COCO_val2014_000000000006.jpg",
    ]
    check_data("configs/benchmarks/coco_captions.yaml", out / "manifest.jsonl")


def test_missing_images_and_a_wrong_file_are_named(tmp_path: Path) -> None:
    root, script = write_flickr(tmp_path / "download"), load_script("flickr30k")
    (root / "flickr30k-images" / "1000092799.jpg").unlink()
    with pytest.raises(script.c.PrepareError, match=r"1000092799\.jpg: not found;"):
        script.main(["--root", str(root), "--out", str(tmp_path / "out")])
    (root / "dataset_coco.json").write_text(json.dumps({"dataset": "coco", "images": []}))
    with pytest.raises(script.c.PrepareError, match=r"'dataset' is 'coco', expected 'flickr30k'"):
        script.main(
            ["--root", str(root), "--json", str(root / "dataset_coco.json"), "--out", str(tmp_path / "out")]
        )
