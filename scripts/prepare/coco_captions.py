"""COCO captions with Karpathy's splits -> an mmfuse manifest of image-caption pairs, for retrieval.

Reads the COCO 2014 images as they unpack and Karpathy's split file (``caption_datasets.zip``:
``dataset_coco.json``; its format in ``_karpathy.py``)::

    train2014/COCO_train2014_<12 digits>.jpg
    val2014/COCO_val2014_<12 digits>.jpg
    dataset_coco.json       113,287 train (restval included) / 5,000 val / 5,000 test images

and writes ``<out>/manifest.jsonl`` (``id``: ``<cocoid>-<k>``, ``split``, ``image``:
``<train2014|val2014>/<file>`` through links to the release's folders, ``text``: the caption).
The 5,000 test images are the "5K" test set; the "1K" figures average five folds of it.

    python scripts/prepare/coco_captions.py --root data/downloads/coco
    mmfuse fit --config configs/benchmarks/coco_captions.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this script
import _common as c
import _karpathy

CONFIG = "configs/benchmarks/coco_captions.yaml"
DEFAULT_OUT = "data/coco_captions"
JSON = "dataset_coco.json"
FOLDERS = ("train2014", "val2014")


def image_of(entry: dict) -> tuple[str, str]:
    folder = str(entry.get("filepath", ""))
    if folder not in FOLDERS:
        raise c.PrepareError(
            f"{JSON}: image {entry.get('filename')!r} has filepath {folder!r}, not one of {FOLDERS}"
        )
    return str(entry["cocoid"]), f"{folder}/{entry['filename']}"


def main(argv: list[str] | None = None) -> int:
    parser = c.parser(
        __doc__ or "", "the folder holding train2014/ and val2014/ (and dataset_coco.json)", DEFAULT_OUT
    )
    _karpathy.add_arguments(parser, JSON)
    args = parser.parse_args(argv)
    rows = _karpathy.rows(args.json or args.root / JSON, "coco", image_of, args.eval_captions, args.limit)
    _karpathy.check_images(args.root, rows)
    args.out.mkdir(parents=True, exist_ok=True)
    for folder in sorted({r["image"].split("/")[0] for r in rows}):
        c.link_folder(args.root / folder, args.out, folder)
    manifest = c.write_manifest(args.out / "manifest.jsonl", rows, _karpathy.COLUMNS)
    print(f"coco: {len(rows)} image-caption pairs ({c.split_counts(rows)})")
    c.next_steps(manifest, CONFIG, f"{DEFAULT_OUT}/manifest.jsonl")
    return 0


if __name__ == "__main__":
    c.run(main)
