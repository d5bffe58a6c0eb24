"""What does training through mmfuse cost on top of a hand-written PyTorch loop?

    python benchmarks/overhead.py                 # 3 repeats x 3 epochs of each setup, ~10 min on 2 cores
    python benchmarks/overhead.py --repeats 5 --epochs 4

Three setups train the quickstart model on the quickstart data with the same batch size,
optimizer, seed and number of steps:

  a  a plain PyTorch loop: forward, cross-entropy, backward, optimizer step;
  b  mmfuse as `mmfuse fit --config configs/quickstart.yaml` runs it: Trainer, progress bar,
     logger, train metrics, checkpoint at every epoch end;
  c  the same Trainer with progress bar, logger and checkpointing off.

Validation is off in all three (it is not part of the training loop being compared). Runs are
interleaved (a b c, a b c, ...) so that slow phases of a shared machine hit all setups alike; the
first epoch of every run is dropped (worker start-up, allocator warm-up). Printed: the median
epoch time of each setup and the ratios b/a and c/a.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from mmfuse.cli import MultimodalCLI
from mmfuse.lit.module import MultimodalModule

ROOT = Path(__file__).resolve().parents[1]


class EpochTimer(pl.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.times.append(time.perf_counter() - self._start)


def build(epochs: int, run_dir: str, *extra: str) -> MultimodalCLI:
    args = [
        "--config", str(ROOT / "configs" / "quickstart.yaml"),
        f"--trainer.max_epochs={epochs}",
        "--trainer.limit_val_batches=0",
        "--trainer.num_sanity_val_steps=0",
        f"--trainer.default_root_dir={run_dir}",
        *extra,
    ]  # fmt: skip
    return MultimodalCLI(
        MultimodalModule, pl.LightningDataModule, subclass_mode_data=True, run=False, args=args,
        auto_configure_optimizers=False,
    )  # fmt: skip


def plain(epochs: int, run_dir: str, *extra: str) -> list[float]:
    cli = build(epochs, run_dir, *extra)  # the same model, data and optimizer settings as the Trainer runs
    model, data = cli.model, cli.datamodule
    data.setup("fit")
    loader = data.train_dataloader()
    optimizer = model.configure_optimizers()
    model.train()
    task = data.task
    times = []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        start = time.perf_counter()
        for batch in loader:
            logits = model.model(batch.inputs, batch.present).logits[task]
            loss = F.cross_entropy(logits, batch.targets[task])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - start)
    return times


def trainer_run(epochs: int, run_dir: str, *extra: str) -> list[float]:
    cli = build(epochs, run_dir, *extra)
    timer = EpochTimer()
    cli.trainer.callbacks.append(timer)  # type: ignore[attr-defined]
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return timer.times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3, help="per run; the first is dropped")
    args = parser.parse_args()
    sys.argv = sys.argv[:1]  # LightningCLI is given its arguments; it warns when sys.argv has more
    torch.set_num_threads(torch.get_num_threads())
    quiet = [
        "--trainer.enable_progress_bar=false",
        "--trainer.logger=false",
        "--trainer.enable_checkpointing=false",
    ]
    epochs: dict[str, list[float]] = {"a": [], "b": [], "c": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            pl.seed_everything(r, verbose=False)
            epochs["a"] += plain(args.epochs, f"{tmp}/a{r}")[1:]
            pl.seed_everything(r, verbose=False)
            epochs["b"] += trainer_run(args.epochs, f"{tmp}/b{r}")[1:]
            pl.seed_everything(r, verbose=False)
            epochs["c"] += trainer_run(args.epochs, f"{tmp}/c{r}", *quiet)[1:]
            print(f"repeat {r + 1}/{args.repeats} done", flush=True)
    med = {k: statistics.median(v) for k, v in epochs.items()}
    print(f"epochs measured per setup: {len(epochs['a'])} ({torch.get_num_threads()} torch threads)")
    print(f"a plain PyTorch loop          median epoch {med['a']:.3f} s")
    print(f"b mmfuse, as the quickstart   median epoch {med['b']:.3f} s   b/a = {med['b'] / med['a']:.3f}")
    print(f"c mmfuse, bar/logger/ckpt off median epoch {med['c']:.3f} s   c/a = {med['c'] / med['a']:.3f}")


if __name__ == "__main__":
    main()
