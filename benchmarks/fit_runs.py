"""One `mmfuse fit` in a fresh process, timed, and what it left behind: the benchmark tables' shared step.

Used by quickstart_table.py and fusion_table.py (run as scripts, this folder is on their path).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
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
    cpu_s: float = 0.0  # CPU time (user + system) of the fit and its DataLoader workers; 0: not measured


RESULT_FILE = "fit_result.json"  # in the fit's --trainer.default_root_dir, once it has finished


def config_args(configs: Sequence[str]) -> list[str]:
    """``["--config", a, "--config", b, ...]``."""
    return [a for config in configs for a in ("--config", config)]


def fit_command(configs: Sequence[str], run_dir: Path, extra: Sequence[str] = ()) -> list[str]:
    """The command :func:`fit` runs."""
    return ["mmfuse", "fit", *config_args(configs), *extra, "--trainer.default_root_dir", str(run_dir)]


def fit(configs: Sequence[str], run_dir: Path, extra: Sequence[str] = (), forked: bool = False) -> FitResult:
    """Run ``mmfuse fit --config ... <extra> --trainer.default_root_dir run_dir`` from the repository root.

    The wall time is the whole command: start-up, fitting, and the test of the best checkpoint. The
    result is also written to ``run_dir/fit_result.json`` (read back by :func:`load_result`).

    Args:
        configs: the ``--config`` files, in order.
        run_dir: the fit's ``--trainer.default_root_dir``.
        extra: more arguments, after the configs.
        forked: run the command in a fork of this process, which imports the ``mmfuse`` command
            once (:func:`preload`): each fit is still a process of its own, without the ~5 s of
            imports (Lightning, torchmetrics) a fresh interpreter pays; its wall time leaves them
            out. False: a fresh ``mmfuse`` process.

    Raises:
        RuntimeError: the fit failed (its last output lines are in the message).
    """
    cmd = fit_command(configs, run_dir, extra)
    load = os.getloadavg()[0]
    cpu = _children_cpu()
    start = time.perf_counter()
    code, output = _forked(cmd) if forked else _subprocess(cmd)
    wall = time.perf_counter() - start
    cpu = _children_cpu() - cpu
    if code:
        tail = "\n".join(output.splitlines()[-20:])
        raise RuntimeError(f"{' '.join(cmd)} failed with code {code}:\n{tail}")
    newest = max(run_dir.glob("**/test_metrics.json"), key=lambda p: p.stat().st_mtime)
    metrics = json.loads(newest.read_text())
    checkpoint = metrics.pop("checkpoint", "")
    result = FitResult(
        metrics={k: float(v) for k, v in metrics.items()},
        params=count_parameters(Path(checkpoint)) if Path(checkpoint).is_file() else 0,
        wall_s=wall,
        run_dir=newest.parent,
        load=(load, os.getloadavg()[0]),
        cpu_s=cpu,
    )
    saved = {**asdict(result), "run_dir": str(result.run_dir), "command": cmd}
    (run_dir / RESULT_FILE).write_text(json.dumps(saved, indent=2) + "\n")
    return result


def _children_cpu() -> float:
    """CPU seconds of this process's finished children (and of theirs that they waited for)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _subprocess(cmd: Sequence[str]) -> tuple[int, str]:
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


def preload() -> float:
    """Import the ``mmfuse`` command into this process, for :func:`fit` ``forked=True``; the seconds it took.

    Only imports: this process must run no torch computation before forking (a thread pool that
    exists in the parent does not survive a fork).
    """
    start = time.perf_counter()
    import mmfuse.main  # noqa: F401  (Lightning, torchmetrics, the CLI)

    return time.perf_counter() - start


def _forked(cmd: Sequence[str]) -> tuple[int, str]:
    """Run ``mmfuse <args>`` (``cmd``) in a forked child; its exit code and output."""
    preload()  # a no-op when done already
    with tempfile.TemporaryFile("w+") as log:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: becomes the command, and never returns
            code = 1
            try:
                os.chdir(ROOT)
                os.dup2(log.fileno(), 1)
                os.dup2(log.fileno(), 2)
                from mmfuse.main import main

                main(list(cmd[1:]))
                code = 0
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else 1
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        log.seek(0)
        return os.waitstatus_to_exitcode(status), log.read()


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
        cpu_s=saved.get("cpu_s", 0.0),
    )


def count_parameters(checkpoint: Path) -> int:
    """The model's parameters (encoders, fuser, heads) in a Lightning checkpoint, buffers left out."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    return sum(v.numel() for k, v in state.items() if k.startswith("model.") and not k.endswith(_BUFFERS))
