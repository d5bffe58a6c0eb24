"""Training throughput and MFU of a realistic model on one GPU: fp32 vs bf16-mixed, eager vs compiled.

    python benchmarks/gpu_throughput.py                                        # ViT-B/16 + BERT-base
    python benchmarks/gpu_throughput.py --config configs/benchmarks/gpu_cnn_bert.yaml
    python benchmarks/gpu_throughput.py --setups bf16 bf16+compile --batch_size 256 --num_workers 12

Each setup trains the model of ``--config`` (layered on configs/quickstart.yaml) through mmfuse's
own Trainer setup, with validation, logger, checkpointing and the progress bar off, for
``--warmup`` steps that are not counted and then ``--steps`` timed steps. It prints one table row:

- ``samples/s``: training samples per second of wall time over the timed steps, data included;
- ``step ms``: median time of one step (forward, backward, optimizer), CUDA-synchronised;
- ``data wait``: the share of the timed wall time spent between two steps: fetching the next
  batch from the DataLoader and moving it to the GPU (high: the data path does not keep up);
- ``GFLOP/sample``: model FLOPs of forward + backward per sample, counted once with
  ``torch.utils.flop_counter`` on the eager model (the same for every setup);
- ``MFU``: achieved FLOP/s (GFLOP/sample x samples/s) over the GPU's dense peak for the setup's
  dtype (bf16, or TF32 for fp32: matmuls run in TF32 here, as Lightning recommends on Ampere and
  newer); ``n/a`` where the peak is unknown (the CPU, an unlisted GPU: pass ``--peak_tflops``);
- ``peak GiB``: the most GPU memory allocated during the setup (``n/a`` on the CPU);
- ``first step s``: the first step's time, which holds the compilation when compiled.

``--accelerator cpu`` with tiny sizes only checks the script (its test does that); the figures
mean something on a GPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.flop_counter import FlopCounterMode

from mmfuse.cli import MultimodalCLI
from mmfuse.lit.module import MultimodalModule

ROOT = Path(__file__).resolve().parents[1]
#: name -> (Trainer precision, compiled)
SETUPS = {
    "fp32": ("32-true", False),
    "fp32+compile": ("32-true", True),
    "bf16": ("bf16-mixed", False),
    "bf16+compile": ("bf16-mixed", True),
}
#: dense peak TFLOP/s by GPU name fragment (first match wins) and dtype, from the vendors' data sheets
#: (SXM parts; PCIe parts are lower: pass --peak_tflops)
PEAK_TFLOPS = {
    "H200": {"bf16": 989.4, "tf32": 494.7},
    "H100": {"bf16": 989.4, "tf32": 494.7},
    "A100": {"bf16": 312.0, "tf32": 156.0},
    "L40S": {"bf16": 362.1, "tf32": 183.2},
    "A10G": {"bf16": 70.0, "tf32": 35.0},
}
COLUMNS = ["setup", "samples/s", "step ms", "data wait", "GFLOP/sample", "MFU", "peak GiB", "first step s"]


class StepTimer(pl.Callback):
    """Wall time of each training step and of the wait for its batch, synchronised with the GPU."""

    def __init__(self) -> None:
        self.compute: list[float] = []
        self.wait: list[float] = []
        self.samples: list[int] = []
        self._end: float | None = None

    def on_train_batch_start(
        self, trainer: pl.Trainer, module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        _sync()
        self.samples.append(len(batch))
        self._start = time.perf_counter()
        # the first step has no previous end: its wait (worker start-up) is not a steady-state figure
        self.wait.append(0.0 if self._end is None else self._start - self._end)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        _sync()
        self._end = time.perf_counter()
        self.compute.append(self._end - self._start)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def build(config: str, precision: str, compile: bool, args: argparse.Namespace, run_dir: str) -> Any:
    argv = [
        "--config", str(ROOT / "configs" / "quickstart.yaml"),
        "--config", config,
        *args.extra,
        f"--trainer.accelerator={args.accelerator}",
        "--trainer.devices=1",
        f"--trainer.precision={precision}",
        f"--model.compile={str(compile).lower()}",
        f"--trainer.max_steps={args.warmup + args.steps}",
        "--trainer.max_epochs=-1",
        "--trainer.limit_val_batches=0",
        "--trainer.num_sanity_val_steps=0",
        "--trainer.enable_progress_bar=false",
        "--trainer.logger=false",
        "--trainer.enable_checkpointing=false",
        f"--trainer.default_root_dir={run_dir}",
    ]  # fmt: skip
    if args.batch_size:
        argv.append(f"--data.init_args.batch_size={args.batch_size}")
    if args.num_workers is not None:
        argv.append(f"--data.init_args.num_workers={args.num_workers}")
    return MultimodalCLI(
        MultimodalModule, pl.LightningDataModule, subclass_mode_data=True, run=False, args=argv,
        auto_configure_optimizers=False,
    )  # fmt: skip


def flops_per_sample(cli: MultimodalCLI) -> float:
    """Forward + backward FLOPs per sample of one training batch, counted on the eager model."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, data = cli.model.to(device), cli.datamodule
    data.setup("fit")  # type: ignore[union-attr]
    batch = model.transfer_batch_to_device(next(iter(data.train_dataloader())), device, 0)  # type: ignore[union-attr]
    model.log = model.log_dict = lambda *a, **k: None  # type: ignore[method-assign]  # no trainer here
    with FlopCounterMode(display=False) as counter:
        model.training_step(batch, 0).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(batch)


def peak_tflops(device_name: str, precision: str, given: float | None) -> float | None:
    if given is not None:
        return given
    dtype = "bf16" if precision.startswith("bf16") else "tf32"
    return next((peaks[dtype] for part, peaks in PEAK_TFLOPS.items() if part in device_name), None)


def run_setup(name: str, flops: float, device: str, args: argparse.Namespace, run_dir: str) -> dict[str, str]:
    precision, compile = SETUPS[name]
    pl.seed_everything(0, verbose=False)
    cli = build(args.config, precision, compile, args, run_dir)
    timer = StepTimer()
    cli.trainer.callbacks.append(timer)  # type: ignore[attr-defined]
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    compute, wait = timer.compute[args.warmup :], timer.wait[args.warmup :]
    wall = sum(compute) + sum(wait)
    rate = sum(timer.samples[args.warmup :]) / wall
    peak = peak_tflops(device, precision, args.peak_tflops)
    memory = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    return {
        "setup": name,
        "samples/s": f"{rate:.1f}",
        "step ms": f"{1000 * statistics.median(compute):.1f}",
        "data wait": f"{100 * sum(wait) / wall:.0f}%",
        "GFLOP/sample": f"{flops / 1e9:.4g}",
        "MFU": "n/a" if peak is None else f"{100 * flops * rate / (peak * 1e12):.2f}%",
        "peak GiB": "n/a" if memory is None else f"{memory:.1f}",
        "first step s": f"{timer.compute[0]:.1f}",
    }


def main(argv: list[str] | None = None) -> list[dict[str, str]]:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "benchmarks" / "gpu_vit_bert.yaml"))
    parser.add_argument("--setups", nargs="+", choices=list(SETUPS), default=list(SETUPS))
    parser.add_argument("--warmup", type=int, default=10, help="steps not timed (compilation, warm caches)")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per setup")
    parser.add_argument("--batch_size", type=int, default=0, help="per GPU; 0: the config's")
    parser.add_argument("--num_workers", type=int, default=None, help="default: the config's")
    parser.add_argument("--peak_tflops", type=float, default=None, help="the GPU's dense peak, if not listed")
    parser.add_argument("--accelerator", default="gpu", help="cpu: only to check the script itself")
    parser.add_argument("extra", nargs="*", help="more CLI arguments for every setup, after --")
    args = parser.parse_args(argv)
    sys.argv = sys.argv[:1]  # LightningCLI is given its arguments; it warns when sys.argv has more
    if args.accelerator == "gpu" and not torch.cuda.is_available():
        raise SystemExit("gpu_throughput.py needs a CUDA GPU (or --accelerator cpu to check the script)")
    torch.set_float32_matmul_precision("high")  # TF32 matmuls for fp32, as Lightning recommends on Ampere+
    device = torch.cuda.get_device_name() if args.accelerator == "gpu" else "CPU"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # counted on a small batch: the FLOPs per sample do not depend on the batch size
        small = argparse.Namespace(**{**vars(args), "batch_size": 8, "num_workers": 0})
        flops = flops_per_sample(build(args.config, "32-true", False, small, f"{tmp}/flops"))
        print(f"{device}; torch {torch.__version__}; {Path(args.config).name}; {args.steps} timed steps")
        print("| " + " | ".join(COLUMNS) + " |")
        print("|" + "---|" * len(COLUMNS), flush=True)
        for i, name in enumerate(args.setups):
            row = run_setup(name, flops, device, args, f"{tmp}/{i}")
            print("| " + " | ".join(row[c] for c in COLUMNS) + " |", flush=True)
            rows.append(row)
    return rows


if __name__ == "__main__":
    main()
