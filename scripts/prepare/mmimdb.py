"""MM-IMDb (Arevalo et al., 2017) -> an mmfuse manifest: poster + plot, multilabel genres.

Reads the release as ``mmimdb.tar.gz`` unpacks it (the dataset's page: http://lisi1.unal.edu.co/mmimdb/)::

    mmimdb/split.json               {"train": [id, ...], "dev": [...], "test": [...]}
    mmimdb/dataset/<id>.json        {"genres": ["Drama", ...], "plot": ["...", ...], ...}
    mmimdb/dataset/<id>.jpeg        the poster

and writes ``<out>/manifest.jsonl`` (``id``, ``split``: train / val (the release's dev) / test,
``image``: ``dataset/<id>.jpeg`` through a link to the release's folder, ``text``: the longest plot,
``genres``: the genres joined by ``|``). The text is picked as MMF's MM-IMDb converter (used for MMBT)
picks it; the targets are the 23 genres of the GMU paper's experiments, listed below. A movie with none
of them (only News, Adult, Reality-TV or Talk-Show) is left out and counted.

    python scripts/prepare/mmimdb.py --root data/downloads/mmimdb
    mmfuse fit --config configs/benchmarks/mmimdb.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this script
import _common as c

#: the 23 genres of the GMU paper's experiments, most frequent first
GENRES = [
    "Drama", "Comedy", "Romance", "Thriller", "Crime", "Action", "Adventure", "Horror", "Documentary",
    "Mystery", "Sci-Fi", "Fantasy", "Family", "Biography", "War", "History", "Music", "Animation",
    "Musical", "Western", "Sport", "Short", "Film-Noir",
]  # fmt: skip
SPLIT_NAMES = {"train": "train", "dev": "val", "test": "test"}
CONFIG = "configs/benchmarks/mmimdb.yaml"
DEFAULT_OUT = "data/mmimdb"


def convert_movie(dataset: Path, movie_id: str, split: str) -> dict[str, str] | None:
    """One manifest row, or None when the movie has none of the 23 genres."""
    meta = c.read_json(dataset / f"{movie_id}.json", f"the metadata of movie {movie_id} listed in split.json")
    c.need(dataset / f"{movie_id}.jpeg", f"the poster of movie {movie_id} listed in split.json")
    if not isinstance(meta, dict) or not isinstance(meta.get("genres"), list):
        raise c.PrepareError(f"{dataset / f'{movie_id}.json'}: no list of 'genres'")
    plots = [p for p in meta.get("plot", []) if isinstance(p, str) and p.strip()]
    if not plots:
        raise c.PrepareError(f"{dataset / f'{movie_id}.json'}: no 'plot' text")
    genres = [g for g in GENRES if g in meta["genres"]]  # the fixed order above
    if not genres:
        return None
    return {
        "id": movie_id,
        "split": split,
        "image": f"dataset/{movie_id}.jpeg",
        "text": max(plots, key=len).strip(),  # the longest plot summary, as MMF's converter
        "genres": "|".join(genres),
    }


def main(argv: list[str] | None = None) -> int:
    root_help = "the release's mmimdb/ folder (holding split.json and dataset/)"
    parser = c.parser(__doc__ or "", root_help, DEFAULT_OUT)
    args = parser.parse_args(argv)
    root: Path = args.root
    splits = c.read_json(root / "split.json", "the official train/dev/test split")
    if not isinstance(splits, dict) or set(splits) != set(SPLIT_NAMES):
        raise c.PrepareError(f"{root / 'split.json'}: expected the keys {sorted(SPLIT_NAMES)}")
    dataset = c.need(root / "dataset", "the folder of <id>.json and <id>.jpeg files")
    args.out.mkdir(parents=True, exist_ok=True)
    c.link_folder(dataset, args.out, "dataset")
    rows: list[dict[str, str]] = []
    dropped = 0
    for name, split in SPLIT_NAMES.items():
        ids = [str(i) for i in c.limited(splits[name], args.limit)]
        progress = c.Progress(f"mmimdb {split}", len(ids))
        for movie_id in ids:
            row = convert_movie(dataset, movie_id, split)
            if row is None:
                dropped += 1
            else:
                rows.append(row)
            progress.step()
    manifest = c.write_manifest(args.out / "manifest.jsonl", rows, ["id", "split", "image", "text", "genres"])
    print(f"mmimdb: {len(rows)} movies ({c.split_counts(rows)}); {dropped} left out: none of the 23 genres")
    c.next_steps(manifest, CONFIG, f"{DEFAULT_OUT}/manifest.jsonl")
    return 0


if __name__ == "__main__":
    c.run(main)
