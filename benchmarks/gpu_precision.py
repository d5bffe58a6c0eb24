"""Training throughput of the quickstart model on one GPU: fp32 vs bf16-mixed, eager vs compiled.

    python benchmarks/gpu_precision.py                          # 4 setups x 4 epochs
    python benchmarks/gpu_precision.py --epochs 6 --batch_size 256 --num_workers 8

Each setup trains the quickstart model (configs/quickstart.yaml) on the quickstart data through
mmfuse's Trainer setup with the progress bar, logger, checkpointing and validation off, and prints
two figures:

- ``trainer samples/s``: training samples per second of wall time, from the second epoch on (the
  first holds worker start-up and, compiled, the compilation); data loading is included, so with
  the quickstart's small model this is usually bound by the DataLoader workers, not the GPU;
- ``step samples/s``: forward + backward + optimizer step on one batch already on the GPU,
  repeated (CUDA-synchronised timing after warm-up): what precision and compile change in the
  model's own cost.

Needs a CUDA GPU (bf16-mixed needs Ampere or newer).
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

from mmfuse.cli import MultimodalCLI
from mmfuse.lit.module import MultimodalModule

ROOT = Path(__file__).resolve().parents[1]
SETUPS = {
    "fp32": ("32-true", False),
    "fp32 + compile": ("32-true", True),
    "bf16-mixed": ("bf16-mixed", False),
    "bf16-mixed + compile": ("bf16-mixed", True),
}


class Throughput(pl.Callback):
    """Samples per second of each training epoch (wall time between epoch start and end)."""

    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._samples = 0
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:
        self._samples += len(args[1])  # type: ignore[arg-type]  # (outputs, batch, batch_idx)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _sync()
        self.rates.append(self._samples / (time.perf_counter() - self._start))


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def build(precision: str, compile: bool, args: argparse.Namespace, run_dir: str) -> MultimodalCLI:
    argv = [
        "--config", str(ROOT / "configs" / "quickstart.yaml"),
        f"--trainer.accelerator={args.accelerator}",
        f"--trainer.precision={precision}",
        f"--model.compile={str(compile).lower()}",
        f"--trainer.max_epochs={args.epochs}",
        "--trainer.limit_val_batches=0",
        "--trainer.num_sanity_val_steps=0",
        "--trainer.enable_progress_bar=false",
        "--trainer.logger=false",
        "--trainer.enable_checkpointing=false",
        f"--trainer.default_root_dir={run_dir}",
        f"--data.init_args.batch_size={args.batch_size}",
        f"--data.init_args.num_workers={args.num_workers}",
    ]  # fmt: skip
    return MultimodalCLI(
        MultimodalModule, pl.LightningDataModule, subclass_mode_data=True, run=False, args=argv,
        auto_configure_optimizers=False,
    )  # fmt: skip


def step_rate(cli: MultimodalCLI, precision: str, steps: int) -> float:
    """Samples/s of forward + backward + step on one batch held on the GPU (the model as fit left it)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, data = cli.model.to(device), cli.datamodule
    batch = next(iter(data.train_dataloader()))
    batch = model.transfer_batch_to_device(batch, device, 0)
    optimizer = model.configure_optimizers()
    model.train()
    dtype = torch.bfloat16 if precision.startswith("bf16") else None

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = model.training_step(batch, 0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.log = lambda *a, **k: None  # type: ignore[method-assign]  # no trainer loop to log to here
    model.log_dict = lambda *a, **k: None  # type: ignore[method-assign]
    for _ in range(10):
        step()
    _sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync()
    return steps * len(batch) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=4, help="per setup; the first is not counted")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--num_workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=100, help="timed steps of the step-only figure")
    parser.add_argument("--accelerator", default="gpu", help="cpu: only to check the script itself")
    args = parser.parse_args()
    sys.argv = sys.argv[:1]  # LightningCLI is given its arguments; it warns when sys.argv has more
    if args.accelerator == "gpu" and not torch.cuda.is_available():
        raise SystemExit("gpu_precision.py needs a CUDA GPU (or --accelerator cpu to check the script)")
    torch.set_float32_matmul_precision("high")  # TF32 for fp32 matmuls, as Lightning recommends on Ampere+
    where = torch.cuda.get_device_name() if args.accelerator == "gpu" else "CPU"
    print(f"{where}; torch {torch.__version__}; batch {args.batch_size}, {args.num_workers} workers")
    print("| setup | trainer samples/s | step samples/s |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (precision, compile) in SETUPS.items():
            pl.seed_everything(0, verbose=False)
            cli = build(precision, compile, args, f"{tmp}/{len(name)}")
            timer = Throughput()
            cli.trainer.callbacks.append(timer)  # type: ignore[attr-defined]
            cli.trainer.fit(cli.model, datamodule=cli.datamodule)
            trainer_rate = statistics.median(timer.rates[1:])
            step = step_rate(cli, precision, args.steps)
            print(f"| {name} | {trainer_rate:.0f} | {step:.0f} |", flush=True)


if __name__ == "__main__":
    main()
