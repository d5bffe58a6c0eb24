"""Karpathy's caption splits (``dataset_flickr30k.json``, ``dataset_coco.json``) -> manifest rows.

The file (from Karpathy & Fei-Fei 2015, "Deep Visual-Semantic Alignments", distributed as
``caption_datasets.zip``) lists every image once::

    {"dataset": "flickr30k", "images": [
        {"filename": "1000092795.jpg", "imgid": 0, "split": "train" | "restval" | "val" | "test",
         "sentences": [{"raw": "Two young guys ...", "tokens": [...], "sentid": 0, "imgid": 0}, ...],
         "filepath": "val2014", "cocoid": 391895}]}          # filepath and cocoid: COCO only

``restval`` images are training images (the standard 113,287-image COCO training set includes them).
A training image gives one row per caption (``<image id>-<k>``); a val or test image one row, its
first caption (``--eval_captions all``: one row per caption). mmfuse's retrieval recall matches each
row's image with that row's caption, so the published protocol (an image is retrieved correctly by any
of its 5 captions) is not what it computes; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import _common as c

SPLITS = {"train": "train", "restval": "train", "val": "val", "test": "test"}
COLUMNS = ["id", "split", "image", "text"]


def add_arguments(parser: argparse.ArgumentParser, json_name: str) -> None:
    """The options both caption converters take beside ``--root``, ``--out`` and ``--limit``."""
    parser.add_argument("--json", type=Path, help=f"Karpathy's {json_name} (default: <root>/{json_name})")
    parser.add_argument(
        "--eval_captions",
        choices=["first", "all"],
        default="first",
        help="val/test rows: each image's first caption (default) or one row per caption",
    )


def rows(
    path: Path,
    dataset: str,
    image_of: Callable[[dict], tuple[str, str]],
    eval_captions: str,
    limit: int | None,
) -> list[dict[str, str]]:
    """Manifest rows from Karpathy's file.

    Args:
        path: the JSON file.
        dataset: its expected ``dataset`` field (``flickr30k`` or ``coco``).
        image_of: an image entry -> (its id, its path relative to the manifest's folder).
        eval_captions: ``first`` or ``all`` (see the module docstring).
        limit: at most this many images per split.
    """
    data = c.read_json(path, f"Karpathy's caption splits for {dataset}")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise c.PrepareError(f"{path}: no 'images' list")
    if data.get("dataset") != dataset:
        raise c.PrepareError(f"{path}: 'dataset' is {data.get('dataset')!r}, expected {dataset!r}")
    out: list[dict[str, str]] = []
    taken = dict.fromkeys(SPLITS.values(), 0)
    progress = c.Progress(dataset, len(data["images"]))
    for number, entry in enumerate(data["images"]):
        where = f"{path}, images[{number}]"
        split = SPLITS.get(entry.get("split", ""))
        if split is None:
            raise c.PrepareError(f"{where}: split {entry.get('split')!r} is not one of {sorted(SPLITS)}")
        progress.step()
        if limit is not None and taken[split] >= limit:
            continue
        taken[split] += 1
        image_id, image = image_of(entry)
        captions = [s.get("raw", "").strip() for s in entry.get("sentences", [])]
        captions = [t for t in captions if t]
        if not captions:
            raise c.PrepareError(f"{where}: image {image_id} has no caption")
        if split != "train" and eval_captions == "first":
            captions = captions[:1]
        for k, text in enumerate(captions):
            out.append({"id": f"{image_id}-{k}", "split": split, "image": image, "text": text})
    return out


def check_images(root: Path, manifest_rows: list[dict[str, str]]) -> None:
    """Every image the rows name exists under ``root`` (named in the error, with how many others)."""
    missing = sorted({r["image"] for r in manifest_rows if not (root / r["image"]).is_file()})
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise c.PrepareError(
            f"{root / missing[0]}: not found{more}; is --root the folder holding the images?"
        )
