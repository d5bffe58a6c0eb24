"""CMU-MOSI / CMU-MOSEI aligned features -> an mmfuse manifest: text + audio + vision features,
sentiment in [-3, 3] with its 7-class and binary forms.

Reads the word-aligned pickles that MulT (Tsai et al., 2019) and MultiBench load
(``mosi_data.pkl``, ``mosei_senti_data.pkl``; MultiBench's ``datasets/affect/get_data.py``)::

    {"train" | "valid" | "test": {
        "text":   (N, T, 300)    GloVe word vectors, zero-padded at the start
        "audio":  (N, T, D_a)    COVAREP features, aligned to the words
        "vision": (N, T, D_v)    Facet features, aligned to the words
        "labels": (N, 1, 1)      sentiment, -3 (very negative) .. 3 (very positive)
        "id":     (N, ...)       the video segment's id
    }}

The pickle is opened with Python's ``pickle``, which can run code stored in the file: convert only a
file you downloaded from the dataset's authors. mmfuse's tabular modality reads one fixed-length vector
per sample, so each modality's sequence becomes its mean over the real time steps (from the first
step where the text is not padding, as MultiBench crops the aligned data); non-finite values (MOSEI's
audio has -inf) are 0, as MulT sets them. The 50-step sequences themselves are not kept.

``<out>/manifest.csv``: ``id``, ``split`` (train / val (the release's valid) / test), ``text``,
``audio``, ``vision`` (the numbers, space separated), ``sentiment`` (the float), ``sentiment7``
(``-3`` .. ``3``: the sentiment rounded and clipped, MulT's Acc-7 classes) and ``polarity``
(``negative`` / ``positive``; empty for a sentiment of exactly 0, which MulT's Acc-2 leaves out).

    python scripts/prepare/cmu_mosi.py --root data/downloads --dataset mosi
    mmfuse fit --config configs/benchmarks/mosi.yaml
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this script
import _common as c
import numpy as np

MODALITIES = ("text", "audio", "vision")
SPLIT_NAMES = {"train": "train", "valid": "val", "test": "test"}
#: the release's file, and the feature sizes the benchmark's config is written for
DATASETS = {
    "mosi": ("mosi_data.pkl", {"text": 300, "audio": 5, "vision": 20}),
    "mosei": ("mosei_senti_data.pkl", {"text": 300, "audio": 74, "vision": 35}),
}


def pooled(sequences: np.ndarray, start: int) -> tuple[np.ndarray, int]:
    """``(T, D)`` -> the ``(D,)`` mean over steps ``start..``, and how many values were not finite."""
    steps = np.asarray(sequences[start:], dtype=np.float64)
    bad = ~np.isfinite(steps)
    steps[bad] = 0.0
    return (steps.mean(axis=0) if len(steps) else np.zeros(sequences.shape[1])), int(bad.sum())


def segment_id(raw: object) -> str:
    """The segment's id as one string (``["abc", "3"]`` -> ``abc_3``)."""
    parts = [p.decode() if isinstance(p, bytes) else str(p) for p in np.ravel(np.asarray(raw, dtype=object))]
    return "_".join(p.strip() for p in parts if p.strip()) or "?"


def convert_split(data: dict, path: Path, name: str, limit: int | None) -> tuple[list[dict[str, str]], int]:
    """One split's rows, and the count of non-finite feature values set to 0."""
    split = SPLIT_NAMES[name]
    missing = [k for k in (*MODALITIES, "labels", "id") if k not in data]
    if missing:
        raise c.PrepareError(f"{path}: split {name!r} has no {missing[0]!r} array (keys: {sorted(data)})")
    n = len(data["labels"])
    if any(len(data[k]) != n for k in (*MODALITIES, "id")):
        sizes = {k: len(data[k]) for k in (*MODALITIES, "labels", "id")}
        raise c.PrepareError(f"{path}: split {name!r}: arrays of different lengths {sizes}")
    rows, bad_values = [], 0
    chosen = c.limited(range(n), limit)
    progress = c.Progress(f"{path.stem} {split}", len(chosen))
    for i in chosen:
        assert isinstance(i, int)
        text = np.asarray(data["text"][i], dtype=np.float64)  # (T, 300)
        real = np.flatnonzero(np.abs(text).sum(axis=1) > 0)
        start = int(real[0]) if len(real) else 0  # the aligned data is zero-padded before the first word
        row = {"id": segment_id(data["id"][i]), "split": split}
        for modality in MODALITIES:
            vector, bad = pooled(np.asarray(data[modality][i]), start)
            bad_values += bad
            row[modality] = " ".join(f"{v:.6g}" for v in vector)
        sentiment = float(np.ravel(data["labels"][i])[0])
        if not np.isfinite(sentiment):
            raise c.PrepareError(f"{path}: split {name!r}, segment {row['id']}: sentiment {sentiment}")
        row["sentiment"] = f"{sentiment:.6g}"
        row["sentiment7"] = str(int(np.clip(np.round(sentiment), -3, 3)))
        row["polarity"] = "positive" if sentiment > 0 else "negative" if sentiment < 0 else ""
        rows.append(row)
        progress.step()
    return rows, bad_values


def unique_ids(rows: list[dict[str, str]]) -> int:
    """Make ids unique (a segment id repeated in the release gets ``#2``, ``#3``...); return how many."""
    seen: dict[str, int] = {}
    renamed = 0
    for row in rows:
        count = seen.get(row["id"], 0) + 1
        seen[row["id"]] = count
        if count > 1:
            row["id"] = f"{row['id']}#{count}"
            renamed += 1
    return renamed


def main(argv: list[str] | None = None) -> int:
    parser = c.parser(__doc__ or "", "the folder holding the release's pickle", "data/<dataset>")
    parser.add_argument(
        "--dataset", choices=sorted(DATASETS), default="mosi", help="which pickle (default mosi)"
    )
    parser.add_argument(
        "--file", help="the pickle's name in --root (default mosi_data.pkl / mosei_senti_data.pkl)"
    )
    args = parser.parse_args(argv)
    default_file, sizes = DATASETS[args.dataset]
    path = c.need(args.root / (args.file or default_file), f"the aligned {args.dataset.upper()} pickle")
    out = Path(f"data/{args.dataset}") if str(args.out) == "data/<dataset>" else args.out
    try:
        with path.open("rb") as f:
            release = pickle.load(f)  # the dataset's own format: see the module docstring
    except (pickle.UnpicklingError, EOFError) as e:
        raise c.PrepareError(f"{path}: not a readable pickle ({e})") from None
    if not isinstance(release, dict) or set(SPLIT_NAMES) - set(release):
        raise c.PrepareError(f"{path}: expected the keys {sorted(SPLIT_NAMES)}")
    rows, bad_values = [], 0
    for name in SPLIT_NAMES:
        split_rows, bad = convert_split(release[name], path, name, args.limit)
        rows += split_rows
        bad_values += bad
    renamed = unique_ids(rows)
    columns = ["id", "split", *MODALITIES, "sentiment", "sentiment7", "polarity"]
    manifest = c.write_manifest(out / "manifest.csv", rows, columns)
    found = {m: len(rows[0][m].split()) for m in MODALITIES} if rows else sizes
    print(f"{args.dataset}: {len(rows)} segments ({c.split_counts(rows)}); features per modality {found}")
    if bad_values or renamed:
        print(f"  {bad_values} non-finite feature values set to 0; {renamed} repeated ids given a #N suffix")
    config = f"configs/benchmarks/{args.dataset}.yaml"
    overrides = "".join(
        f" --data.init_args.modalities.{m}.init_args.num_features {found[m]}"
        for m in MODALITIES
        if found[m] != sizes[m]
    )
    c.next_steps(manifest, config + overrides, f"data/{args.dataset}/manifest.csv")
    return 0


if __name__ == "__main__":
    c.run(main)
