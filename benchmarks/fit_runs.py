"""One `mmfuse fit` in a fresh process, timed, and what it left behind: the benchmark tables' shared step.

Used by quickstart_table.py and fusion_table.py (run as scripts, this folder is on their path).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
# batch-norm statistics are state, not parameters
_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


@dataclass
class FitResult:
    """What one fit gave: its test metrics (of the best checkpoint), parameters and wall time."""

    metrics: dict[str, float]
    params: int
    wall_s: float
    run_dir: Path
    load: tuple[float, float] = (0.0, 0.0)  # the 1-minute load average at the start and at the end


RESULT_FILE = "fit_result.json"  # in the fit's --trainer.default_root_dir, once it has finished


def config_args(configs: Sequence[str]) -> list[str]:
    """``["--config", a, "--config", b, ...]``."""
    return [a for config in configs for a in ("--config", config)]


def fit_command(configs: Sequence[str], run_dir: Path, extra: Sequence[str] = ()) -> list[str]:
    """The command :func:`fit` runs."""
    return ["mmfuse", "fit", *config_args(configs), *extra, "--trainer.default_root_dir", str(run_dir)]


def fit(configs: Sequence[str], run_dir: Path, extra: Sequence[str] = ()) -> FitResult:
    """Run ``mmfuse fit --config ... <extra> --trainer.default_root_dir run_dir`` from the repository root.

    The wall time is the whole command: start-up, fitting, and the test of the best checkpoint. The
    result is also written to ``run_dir/fit_result.json`` (read back by :func:`load_result`).

    Raises:
        RuntimeError: the fit failed (its last output lines are in the message).
    """
    cmd = fit_command(configs, run_dir, extra)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise RuntimeError(f"{' '.join(cmd)} failed with code {done.returncode}:\n{tail}")
    newest = max(run_dir.glob("**/test_metrics.json"), key=lambda p: p.stat().st_mtime)
    metrics = json.loads(newest.read_text())
    checkpoint = metrics.pop("checkpoint", "")
    result = FitResult(
        metrics={k: float(v) for k, v in metrics.items()},
        params=count_parameters(Path(checkpoint)) if Path(checkpoint).is_file() else 0,
        wall_s=wall,
        run_dir=newest.parent,
        load=(load, os.getloadavg()[0]),
    )
    saved = {**asdict(result), "run_dir": str(result.run_dir), "command": cmd}
    (run_dir / RESULT_FILE).write_text(json.dumps(saved, indent=2) + "\n")
    return result


def load_result(run_dir: Path, command: Sequence[str]) -> FitResult | None:
    """The result :func:`fit` wrote into ``run_dir``; None when no fit of exactly ``command`` (the
    same configs and settings) finished there."""
    path = run_dir / RESULT_FILE
    saved = json.loads(path.read_text()) if path.is_file() else {}
    if saved.get("command") != list(command):
        return None
    return FitResult(
        metrics=saved["metrics"],
        params=saved["params"],
        wall_s=saved["wall_s"],
        run_dir=Path(saved["run_dir"]),
        load=tuple(saved["load"]),
    )


def count_parameters(checkpoint: Path) -> int:
    """The model's parameters (encoders, fuser, heads) in a Lightning checkpoint, buffers left out."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    return sum(v.numel() for k, v in state.items() if k.startswith("model.") and not k.endswith(_BUFFERS))
