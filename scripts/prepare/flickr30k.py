"""Flickr30k with Karpathy's splits -> an mmfuse manifest of image-caption pairs, for retrieval.

Reads the images as the Flickr30k release unpacks them and Karpathy's split file
(``caption_datasets.zip``: ``dataset_flickr30k.json``; its format in ``_karpathy.py``)::

    flickr30k-images/<filename>.jpg
    dataset_flickr30k.json              29,000 train / 1,014 val / 1,000 test images, 5 captions each

and writes ``<out>/manifest.jsonl`` (``id``: ``<image>-<k>``, ``split``, ``image``:
``flickr30k-images/<file>`` through a link to the release's folder, ``text``: the caption).

    python scripts/prepare/flickr30k.py --root data/downloads/flickr30k
    mmfuse fit --config configs/benchmarks/flickr30k.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this script
import _common as c
import _karpathy

CONFIG = "configs/benchmarks/flickr30k.yaml"
DEFAULT_OUT = "data/flickr30k"
JSON = "dataset_flickr30k.json"


def main(argv: list[str] | None = None) -> int:
    parser = c.parser(
        __doc__ or "", "the folder holding flickr30k-images/ (and dataset_flickr30k.json)", DEFAULT_OUT
    )
    _karpathy.add_arguments(parser, JSON)
    args = parser.parse_args(argv)
    images = c.need(args.root / "flickr30k-images", "the folder of Flickr30k's .jpg images")

    def image_of(entry: dict) -> tuple[str, str]:
        name = str(entry["filename"])
        return Path(name).stem, f"flickr30k-images/{name}"

    rows = _karpathy.rows(
        args.json or args.root / JSON, "flickr30k", image_of, args.eval_captions, args.limit
    )
    _karpathy.check_images(args.root, rows)
    args.out.mkdir(parents=True, exist_ok=True)
    c.link_folder(images, args.out, "flickr30k-images")
    manifest = c.write_manifest(args.out / "manifest.jsonl", rows, _karpathy.COLUMNS)
    print(f"flickr30k: {len(rows)} image-caption pairs ({c.split_counts(rows)})")
    c.next_steps(manifest, CONFIG, f"{DEFAULT_OUT}/manifest.jsonl")
    return 0


if __name__ == "__main__":
    c.run(main)
