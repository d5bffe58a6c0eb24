"""Where one loader worker's time goes, per sample: per-file reading vs shards vs decoded shards.

    python benchmarks/shard_stages.py --samples 2000

Writes the samples of benchmarks/shards.py (a 32-px PNG, a caption, a 0.25 s WAV), packs them as they
are and decoded (``--resize_images --audio_features``), and times each stage of reading a train
sample in this process with one torch thread, as a DataLoader worker reads it: this process's CPU
time (not wall time, which other jobs inflate), the best of 3 passes over the train split, in µs a
sample. The stages are timed apart, each over every sample; "one item" is the dataset's
``__getitem__`` (all of them in turn, and its own bookkeeping), and "epoch" a whole DataLoader epoch
with 0 workers (items, collate, the sampler). "The rest of one item" is the item less its stages:
its bookkeeping (the augmentation seed, target checks, a per-file path's check: tens of µs) and what
the stages cost more run in turn than each alone (here, hundreds of µs for per-file decoding: the
same decoders in a loop of their own run faster).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from mmfuse.commands.pack import pack
from mmfuse.data import ManifestSource
from mmfuse.data.dataset import Collate, ManifestDataset
from mmfuse.data.sampling import sample_seed
from mmfuse.data.sources.shards import ShardRow, ShardSource


def per_sample(fn: Callable[[Any], Any], items: Sequence[Any], passes: int = 3) -> float:
    """CPU µs a call of ``fn`` over ``items``: the best of ``passes``."""
    best = float("inf")
    for _ in range(passes):
        start = time.process_time()
        for item in items:
            fn(item)
        best = min(best, time.process_time() - start)
    return 1e6 * best / len(items)


def media_stages(name: str, dm: Any, manifest: Any, rows: Sequence[Any]) -> dict[str, float]:
    """µs a sample to read a media column's bytes (file or member) and to decode them."""
    if isinstance(rows[0], ShardRow):
        members = [r.read(dm.column) for r in rows]
        return {
            f"{name}: read": per_sample(lambda r: r.read(dm.column), rows),
            f"{name}: decode": per_sample(lambda m: dm.load_bytes(m[0], m[1], True), members),
        }
    read = per_sample(lambda path: path.read_bytes(), [manifest.root / r.cells[dm.column] for r in rows])
    load = per_sample(lambda r: dm.load(r.cells[dm.column], manifest.root, True), rows)  # read + decode
    return {f"{name}: read": read, f"{name}: decode": load - read}


def stages(source: ManifestSource) -> dict[str, float]:
    """µs a train sample for each stage of reading it from ``source``."""
    from shards import setup  # benchmarks/shards.py, beside this script

    data, _ = setup(source)
    manifest, rows, mods = data.manifest, data.rows("train"), data.modalities
    times: dict[str, float] = {}
    for name in ("image", "audio"):
        times.update(media_stages(name, mods[name], manifest, rows))
    text = mods["text"]
    times["text: tokenise"] = per_sample(lambda r: text.load(r.cells[text.column], manifest.root, True), rows)
    dataset = ManifestDataset(manifest, rows, mods, train=True)
    keys = [(sample_seed(0, 0, i), i) for i in range(len(rows))]
    item = per_sample(dataset.__getitem__, keys)
    times["rest of one item (see the docstring)"] = item - sum(times.values())
    times["one item (all of the above)"] = item
    items = [dataset[k] for k in keys]
    collate = Collate(mods, {t.name: t.kind for t in manifest.tasks})
    batches = [items[i : i + data.batch_size] for i in range(0, len(items), data.batch_size)]
    times["collate"] = per_sample(collate, batches) * len(batches) / len(items)
    data.num_workers, data.persistent_workers = 0, False
    epoch = float("inf")
    for _ in range(2):
        start = time.process_time()
        for _ in data.train_dataloader():
            pass
        epoch = min(epoch, time.process_time() - start)
    times["epoch, 0 workers (a sample)"] = 1e6 * epoch / len(rows)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=2000, help="samples to write and read (default 2000)")
    args = parser.parse_args(argv)
    from shards import PACKINGS, modalities, write_samples  # benchmarks/shards.py, beside this script

    torch.set_num_threads(1)  # as in a DataLoader worker
    with tempfile.TemporaryDirectory(prefix="mmfuse-stages-") as tmp:
        manifest = ManifestSource(str(write_samples(Path(tmp) / "files", args.samples)))
        sources: dict[str, ManifestSource] = {"per file": manifest}
        for name, options in PACKINGS.items():
            out = Path(tmp) / f"shards-{len(sources)}"
            pack(manifest, modalities(), str(out), samples_per_shard=5000, workers=0, **options)
            sources[name] = ShardSource(**yaml.safe_load((out / "source.yaml").read_text())["init_args"])
        table = {name: stages(source) for name, source in sources.items()}
    names = list(table)
    print(f"\nCPU µs a train sample, one process, one torch thread ({args.samples} samples)")
    print("| stage | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    order = list(dict.fromkeys(stage for times in table.values() for stage in times))
    for stage in order:
        cells = [f"{table[n][stage]:.0f}" if stage in table[n] else "" for n in names]
        print(f"| {stage} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
