"""Per-file manifest vs WebDataset shards: the same small samples through the same decoders.

    python benchmarks/shards.py --samples 10000
    python benchmarks/shards.py --index 100000  # only: loading shards by scanning them vs by their index

Writes N samples (a 32-px PNG, a caption, a 0.25 s WAV; the quickstart's modalities) as files with a
manifest, packs them with ``mmfuse pack`` (2 workers), and times the train DataLoader on each, with
0, 1 and 2 workers: seconds to the first batch (worker start-up and, for shards, nothing more: the
index is built at setup, timed apart) and samples/s over one epoch. The files were just written, so
both read from the page cache: what is compared is the cost per sample of opening files vs reading
offsets in a few open shards, not a cold disk. Then the shards are served by ``python -m http.server``
on 127.0.0.1 and read as ``simplecache::http://...`` (that server answers no byte ranges; fsspec
fetches each shard once per process and reads it locally).

With ``--index N``: N tiny samples (64 bytes of "image", a caption, a JSON label) in shards of 10,000,
loaded by ``ShardSource.load()`` twice, first scanning every tar header, then from the index beside
each shard (``mmfuse index``); both give the same rows, and both include building them.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gc
import io
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
import yaml
from PIL import Image

from mmfuse.commands.pack import pack
from mmfuse.data import AudioDataModule, ImageDataModule, ManifestSource, MultimodalDataModule, TextDataModule
from mmfuse.data.manifest.manifest import SPLITS
from mmfuse.data.sources.shard_files import expand, scan
from mmfuse.data.sources.shard_index import read_index, write_index
from mmfuse.data.sources.shards import ShardSource

VARIANTS = 64  # distinct images and sounds, written under N names: every file is opened on its own


def modalities() -> dict[str, Any]:
    """The quickstart's decoders."""
    return {
        "audio": AudioDataModule(sample_rate=8000, max_seconds=1.0, n_fft=256, hop_length=256, n_mels=32),
        "image": ImageDataModule(size=32),
        "text": TextDataModule(max_length=32, vocab_size=512),
    }


def write_samples(folder: Path, n: int) -> Path:
    """N samples as files and a manifest (1% val, 1% test)."""
    rng = np.random.default_rng(0)
    images, sounds = [], []
    for _ in range(VARIANTS):
        out = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(out, format="PNG")
        images.append(out.getvalue())
        out = io.BytesIO()
        sf.write(out, (0.1 * rng.standard_normal(2000)).astype(np.float32), 8000, format="WAV")
        sounds.append(out.getvalue())
    (folder / "media").mkdir(parents=True)
    with (folder / "manifest.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "split", "image", "text", "audio", "label"])
        for i in range(n):
            (folder / "media" / f"{i}.png").write_bytes(images[i % VARIANTS])
            (folder / "media" / f"{i}.wav").write_bytes(sounds[i % VARIANTS])
            split = "val" if i % 100 == 1 else "test" if i % 100 == 2 else "train"
            writer.writerow([i, split, f"media/{i}.png", f"a photo number {i % 97}", f"media/{i}.wav", i % 4])
    return folder / "manifest.csv"


def timed(data: MultimodalDataModule, workers: int) -> tuple[float, float]:
    """(seconds to the first batch, samples/s over the epoch) of a fresh train DataLoader.

    With 0 workers this process decodes with one torch thread, as a worker does (PyTorch sets one in
    each): the rows then compare the loaders, not torch's thread pool on tiny tensors, which on a busy
    2-core machine made decoding per file here 7x slower than in a worker.
    """
    data.num_workers, data.persistent_workers = workers, False
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if workers == 0 else threads)
    try:
        start = time.perf_counter()
        batches = iter(data.train_dataloader())
        n = len(next(batches))
        first = time.perf_counter() - start
        for batch in batches:
            n += len(batch)
        return first, n / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)


def setup(source: ManifestSource) -> tuple[MultimodalDataModule, float]:
    start = time.perf_counter()
    data = MultimodalDataModule(source, modalities(), batch_size=64, seed=0)
    data.setup("fit")
    return data, time.perf_counter() - start


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: how each kind of shards is packed: as the files are, and decoded (what docs/scale.md recommends for speed)
PACKINGS = {
    "shards": {},
    "shards, decoded (--resize_images --audio_features)": {"resize_images": True, "audio_features": True},
}


def compare(n: int, model: float | None = None, repeat: int = 1) -> None:
    """Print the table; ``model``: the training step's samples/s, for a column "vs. the model";
    ``repeat``: measure every row this many times, in turns, and keep its best (a shared machine)."""
    with tempfile.TemporaryDirectory(prefix="mmfuse-shards-") as tmp:
        start = time.perf_counter()
        manifest = ManifestSource(str(write_samples(Path(tmp) / "files", n)))
        print(f"wrote {n} samples ({2 * n} media files) in {time.perf_counter() - start:.0f} s")
        sources: dict[str, ManifestSource] = {"manifest (per file)": manifest}
        folders: dict[str, Path] = {}
        for name, options in PACKINGS.items():
            start = time.perf_counter()
            folders[name] = out = Path(tmp) / f"shards-{len(folders)}"
            pack(manifest, modalities(), str(out), samples_per_shard=5000, workers=2, **options)
            shards = sum(1 for _ in out.glob("*.tar"))
            print(f"mmfuse pack {name}, 2 workers: {shards} shards in {time.perf_counter() - start:.0f} s")
            sources[name] = ShardSource(**yaml.safe_load((out / "source.yaml").read_text())["init_args"])
        train_shards = sum(1 for _ in folders["shards"].glob("train-*.tar"))
        train = len(manifest.load().split("train"))
        # (source, workers) -> the best (setup s, first batch s, samples/s) of the repeats
        best: dict[tuple[str, int], tuple[float, float, float]] = {}
        for _ in range(repeat):
            for name, source in sources.items():
                data, index = setup(source)
                for workers in (0, 1, 2):
                    first, rate = timed(data, workers)
                    was = best.get((name, workers), (index, first, rate))
                    best[name, workers] = (min(was[0], index), min(was[1], first), max(was[2], rate))
                    print(f"  {name}, {workers} workers: {rate:.0f} samples/s", flush=True)  # table: last
        rows = []
        for (name, workers), (index, first, rate) in best.items():
            opened = f"{2 * train}" if name.startswith("manifest") else f"<= {train_shards * max(workers, 1)}"
            rows.append((name, workers, index, first, rate, opened))
        fast = list(PACKINGS)[-1]
        with _served(folders[fast]) as url:
            init = yaml.safe_load((folders[fast] / "source.yaml").read_text())["init_args"]
            remote = {k: v.replace(str(folders[fast]), url) if k in SPLITS else v for k, v in init.items()}
            data, index = setup(ShardSource(**remote))
            first, rate = timed(data, 2)
            opened = "shards fetched once a process"
            rows.append((f"{fast} over HTTP (loopback)", 2, index, first, rate, opened))
    base = {w: r[4] for r in rows if r[0].startswith("manifest") for w in [r[1]]}
    print(f"\n{n} samples, {train} in train; batch 64")
    columns = ["source", "workers", "setup s", "first batch s", "samples/s", "vs. per-file", "vs. the model"]
    print("| " + " | ".join([*columns, "files opened"]) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, workers, index, first, rate, opened in rows:
        vs_model = f"{rate / model:.1f}x" if model else ""
        line = f"| {name} | {workers} | {index:.1f} | {first:.2f} | {rate:.0f} | {rate / base[workers]:.2f}x "
        print(f"{line}| {vs_model} | {opened} |")


@contextlib.contextmanager
def _served(folder: Path) -> Iterator[str]:
    """``python -m http.server`` on 127.0.0.1 serving ``folder``; yields the URL that reads it through
    fsspec (``simplecache::``: that server answers no byte ranges, so each shard is fetched once)."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"simplecache::http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def write_tiny_shards(folder: Path, n: int, per_shard: int = 10000) -> str:
    """N tiny samples in tar shards as img2dataset lays them out; returns the shards' pattern."""
    rng = np.random.default_rng(0)
    shards = (n + per_shard - 1) // per_shard
    for s in range(shards):
        with tarfile.open(folder / f"train-{s:06d}.tar", "w") as tar:
            for i in range(s * per_shard, min(n, (s + 1) * per_shard)):
                members = {
                    "jpg": rng.integers(0, 255, 64, dtype=np.uint8).tobytes(),
                    "txt": f"a photo number {i % 97}".encode(),
                    "json": f'{{"label": "{i % 4}"}}'.encode(),
                }
                for extension, data in members.items():
                    info = tarfile.TarInfo(f"{i:09d}.{extension}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return f"{folder}/train-{{000000..{shards - 1:06d}}}.tar"


def index_vs_scan(n: int) -> None:
    """Print seconds to load N tiny samples' shards by scanning them and by their index: the shards'
    part alone (``scan`` vs ``read_index``) and ``ShardSource.load()`` (which also builds the rows)."""
    small = {"txt", "json"}
    times: dict[str, float] = {}
    cpu: dict[str, float] = {}  # this process's CPU seconds: what a shared machine's load does not inflate

    def timed_part(name: str, fn: Callable[[], Any]) -> Any:
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        times[name], cpu[name] = time.perf_counter() - start, time.process_time() - start_cpu
        return result

    gc.disable()  # as ShardSource.load does: millions of small objects, no cycles
    try:
        with tempfile.TemporaryDirectory(prefix="mmfuse-index-") as tmp:
            urls = expand(write_tiny_shards(Path(tmp), n))
            source = ShardSource(train=" ".join(urls))
            scanned = timed_part("scan", lambda: [s for url in urls for s, _ in scan(url, small)])
            rows = timed_part("load scan", lambda: [(r.id, r.cells) for r in source.load().rows])
            timed_part("write", lambda: [write_index(url, sorted(small)) for url in urls])
            index_bytes = sum(p.stat().st_size for p in Path(tmp).glob("*.idx"))
            indexed = timed_part("index", lambda: [s for u in urls for s, _ in read_index(u, small)[0] or []])
            same = timed_part("load index", lambda: [(r.id, r.cells) for r in source.load().rows]) == rows
    finally:
        gc.enable()
    same = same and scanned == indexed
    print(f"\n{n} tiny samples in {len(urls)} shards; the same samples and rows both ways: {same}")
    print(f"index files: {index_bytes / n:.0f} bytes a sample; writing them took {times['write']:.2f} s")
    columns = ["step", "by scanning s (CPU)", "by the index s (CPU)", "CPU us a sample", "faster (CPU)"]
    print("| " + " | ".join(columns) + " |")
    print("|---|---|---|---|---|")
    steps = (("the shards' samples", "scan", "index"), ("load() (+ rows)", "load scan", "load index"))
    for step, a, b in steps:
        us = f"{1e6 * cpu[a] / n:.0f} / {1e6 * cpu[b] / n:.0f}"
        scanning, indexed = f"{times[a]:.2f} ({cpu[a]:.2f})", f"{times[b]:.2f} ({cpu[b]:.2f})"
        faster = f"{times[a] / times[b]:.1f}x ({cpu[a] / cpu[b]:.1f}x)"
        print(f"| {step} | {scanning} | {indexed} | {us} (scan / index) | {faster} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--samples", type=int, default=10000, help="samples to write and read (default 10000)"
    )
    parser.add_argument(
        "--index", type=int, default=0, help="only: load N tiny samples' shards by scan and by index"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="measure N times, keep each figure's best (a shared machine)"
    )
    args = parser.parse_args()
    if args.index:
        index_vs_scan(args.index)
    else:
        compare(args.samples, repeat=args.repeat)


if __name__ == "__main__":
    main()
