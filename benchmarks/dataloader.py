"""Is data loading ever the bottleneck? Loader throughput vs. the model's, and check-data's speed.

    python benchmarks/dataloader.py                 # the quickstart data and model
    python benchmarks/dataloader.py --rows 100000   # also check-data on a 100k-row manifest
    python benchmarks/dataloader.py --shards 100000 # also per-file manifest vs WebDataset shards

Prints, for the quickstart config:

- samples/s of the train DataLoader with 0, 1 and 2 worker processes (decode PNG + WAV + text,
  log-mel, collate), timed over a whole epoch after one warm-up epoch (persistent workers); then
  with 2 workers and ``cache_samples`` (every sample decoded once beforehand, served from memory:
  what the quickstart config does; the one-off decoding is the ``data train: ... kept`` line);
- samples/s of the quickstart model's training step (forward, backward, AdamW step) on batches
  already in memory: the faster of 1 and 2 torch threads (on a busy machine 2 threads can be far
  slower than 1), so that the loader is compared with the fastest the model can consume;
- rows/s of ``mmfuse check-data`` (decode every file of every split, 2 workers);
- with ``--shards N``: N small samples (32-px PNG, a caption, a 0.25 s WAV) read per file from a
  manifest and from WebDataset shards (``mmfuse pack``), 0/1/2 workers side by side: time to the
  first batch, samples/s over one epoch and the files opened; then the same shards streamed from a
  loopback HTTP server (``python -m http.server`` on 127.0.0.1, read through fsspec's
  ``simplecache::``, since that server answers no byte ranges). See benchmarks/shards.py.

Run it when the machine is otherwise idle: the figures are wall-clock rates (``--repeat N`` keeps
the best of N measurements of each, which filters out other jobs' interference).
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path
from typing import Any

import torch

from mmfuse.commands.config import full_cli
from mmfuse.data import ManifestSource
from mmfuse.data.problems import check

ROOT = Path(__file__).resolve().parents[1]


def loader_rate(data: Any, workers: int, cache: bool = False) -> float:
    data.num_workers, data.persistent_workers, data.cache_samples = workers, workers > 0, cache
    loader = data.train_dataloader()  # with cache: decodes every sample here, before the timing
    for _ in loader:  # warm-up epoch: worker start-up, file cache
        pass
    start, n = time.perf_counter(), 0
    for batch in loader:
        n += len(batch)
    return n / (time.perf_counter() - start)


def model_rate(module: Any, batches: list[Any], passes: int = 3) -> float:
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
    module.train()

    def step(batch: Any) -> None:
        output = module(batch)
        loss = module.total_loss(module.task_losses(output, batch), {})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step(batches[0])  # warm-up
    start, n = time.perf_counter(), 0
    for _ in range(passes):
        for batch in batches:
            step(batch)
            n += len(batch)
    return n / (time.perf_counter() - start)


def big_manifest(manifest: Path, rows: int, out: Path) -> Path:
    """``rows`` rows that reuse the quickstart's files under new ids (in the same folder, for the paths)."""
    with manifest.open() as f:
        source = list(csv.DictReader(f))
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(source[0]))
        writer.writeheader()
        for i in range(rows):
            writer.writerow({**source[i % len(source)], "id": f"big{i}"})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=0, help="also time check-data on a manifest this long")
    parser.add_argument("--shards", type=int, default=0, help="also compare manifest and shards on N samples")
    parser.add_argument(
        "--repeat", type=int, default=1, help="measure N times, keep each figure's best (a shared machine)"
    )
    args = parser.parse_args()
    cli = full_cli(["--config", str(ROOT / "configs/quickstart.yaml"), "--trainer.logger=false"])
    data, module = cli.datamodule, cli.model
    data.prepare_data()
    data.setup("fit")
    print(f"data: {data.describe()}; batch size {data.batch_size}; torch threads {torch.get_num_threads()}")
    rates: dict[str, float] = {}
    by_threads: dict[int, float] = {}
    check_rate = 0.0
    threads = torch.get_num_threads()
    for _ in range(args.repeat):
        for w, cache in ((0, False), (1, False), (2, False), (2, True)):
            name = f"{w} worker{'s' if w != 1 else ''}" + (", samples kept in memory" if cache else "")
            rates[name] = max(rates.get(name, 0.0), loader_rate(data, w, cache))
        data.num_workers, data.persistent_workers, data.cache_samples = 0, False, False
        batches = [b for b, _ in zip(data.train_dataloader(), range(8), strict=False)]
        for n in sorted({1, threads}):
            torch.set_num_threads(n)
            by_threads[n] = max(by_threads.get(n, 0.0), model_rate(module, batches))
        torch.set_num_threads(threads)
        report = check(data.source, data.modalities, num_workers=2)
        check_rate = max(check_rate, report.total_rows / report.seconds)
    best = max(by_threads, key=by_threads.__getitem__)
    model = by_threads[best]
    print("| what | samples/s | vs. the model |")
    print("|---|---|---|")
    for name, rate in rates.items():
        print(f"| DataLoader, {name} | {rate:.0f} | {rate / model:.1f}x |")
    step = f"training step (quickstart model, {best} torch thread{'s' if best > 1 else ''})"
    print(f"| {step} | {model:.0f} | 1.0x |")
    print(f"| check-data, 2 workers ({report.total_rows} rows) | {check_rate:.0f} rows/s | |")
    if args.rows:
        # beside the quickstart's manifest, so that its relative media paths hold
        big = big_manifest(
            data.manifest.path, args.rows, data.manifest.root / f".benchmark-{os.getpid()}.csv"
        )
        try:
            report = check(ManifestSource(str(big)), data.modalities, num_workers=2)
        finally:
            big.unlink()
        rate = report.total_rows / report.seconds
        n, seconds = report.total_rows, report.seconds
        print(f"| check-data, 2 workers ({n} rows) | {rate:.0f} rows/s ({seconds:.0f} s) | |")
    if args.shards:
        from shards import compare  # benchmarks/shards.py, beside this script

        compare(args.shards, model, repeat=args.repeat)


if __name__ == "__main__":
    main()
