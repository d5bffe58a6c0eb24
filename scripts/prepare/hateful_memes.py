"""Hateful Memes (Kiela et al., 2020) -> an mmfuse manifest: meme image + its text, binary hateful.

Reads the release as Facebook AI distributed it (the challenge's ``data/`` folder; phase 2, which
has the test_seen labels)::

    data/img/<5 digits>.png
    data/train.jsonl                 {"id": 42953, "img": "img/42953.png", "label": 0, "text": "..."}
    data/dev_seen.jsonl              the validation set (phase 1's dev.jsonl)
    data/test_seen.jsonl             the test set (phase 1's test.jsonl, labelled in phase 2)

and writes ``<out>/manifest.jsonl`` (``id``, ``split``, ``image``: ``img/<file>`` through a link to
the release's folder, ``text``, ``label``: ``not_hateful`` / ``hateful``). ``--val dev_unseen.jsonl``
or ``--test test_unseen.jsonl`` choose the phase 2 "unseen" sets instead. A file without labels
(phase 1's ``test.jsonl``) is written with empty labels: usable by ``predict``, not by ``test``.

    python scripts/prepare/hateful_memes.py --root data/downloads/hateful_memes/data
    mmfuse fit --config configs/benchmarks/hateful_memes.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this script
import _common as c

LABELS = {0: "not_hateful", 1: "hateful"}
CONFIG = "configs/benchmarks/hateful_memes.yaml"
DEFAULT_OUT = "data/hateful_memes"


def convert(root: Path, file: str, split: str, limit: int | None) -> list[dict[str, str]]:
    """The rows of one of the release's ``.jsonl`` files."""
    path = root / file
    records = c.limited(c.read_jsonl(path, f"the {split} set"), limit)
    rows = []
    progress = c.Progress(f"hateful_memes {split}", len(records))
    for number, record in enumerate(records, 1):
        assert isinstance(record, dict)
        where = f"{path}, line {number}"
        missing = [k for k in ("id", "img", "text") if k not in record]
        if missing:
            raise c.PrepareError(f"{where}: no field {missing[0]!r}")
        image = str(record["img"])
        if not image.startswith("img/"):
            raise c.PrepareError(f"{where}: 'img' {image!r} is not under img/")
        c.need(root / image, f"the image of meme {record['id']} ({where})")
        label = record.get("label")
        if label is not None and label not in LABELS:
            raise c.PrepareError(f"{where}: label {label!r} is not 0 or 1")
        rows.append(
            {
                "id": str(record["id"]),
                "split": split,
                "image": image,
                "text": str(record["text"]).strip(),
                "label": "" if label is None else LABELS[int(label)],
            }
        )
        progress.step()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = c.parser(
        __doc__ or "", "the release's data/ folder (holding img/ and the .jsonl files)", DEFAULT_OUT
    )
    parser.add_argument(
        "--train", default="train.jsonl", help="the training set's file (default train.jsonl)"
    )
    parser.add_argument(
        "--val", default="dev_seen.jsonl", help="the validation set's file (default dev_seen.jsonl)"
    )
    parser.add_argument(
        "--test", default="test_seen.jsonl", help="the test set's file (default test_seen.jsonl)"
    )
    args = parser.parse_args(argv)
    root: Path = args.root
    c.need(root / "img", "the folder of meme images")
    rows, seen = [], {}
    for split, file in (("train", args.train), ("val", args.val), ("test", args.test)):
        for row in convert(root, file, split, args.limit):
            if row["id"] in seen:  # one id in two files would be one sample in two splits
                raise c.PrepareError(f"{root / file}: meme {row['id']} is also in {seen[row['id']]}")
            seen[row["id"]] = file
            rows.append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    c.link_folder(root / "img", args.out, "img")
    manifest = c.write_manifest(args.out / "manifest.jsonl", rows, ["id", "split", "image", "text", "label"])
    hateful = sum(r["label"] == "hateful" for r in rows)
    print(f"hateful_memes: {len(rows)} memes ({c.split_counts(rows)}), {hateful} hateful")
    c.next_steps(manifest, CONFIG, f"{DEFAULT_OUT}/manifest.jsonl")
    return 0


if __name__ == "__main__":
    c.run(main)
