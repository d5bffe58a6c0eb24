"""One `mmfuse fit` in a process of its own, timed, and what it left behind: the benchmark tables' step.

:func:`fit` runs one and waits for it; :func:`fit_all` runs several, a few at a time. Used by
quickstart_table.py, pretrain_probe.py and fusion_table.py (run as scripts, this folder is on their path).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, NoReturn

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
    times: tuple[float, float] = (0.0, 0.0)  # when it started and ended (Unix time); 0: not recorded


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
    running = start(Fit(tuple(configs), run_dir, tuple(extra)), forked)
    _, status, usage = os.wait4(running.pid, 0)
    return running.finish(status, usage, time.perf_counter())


@dataclass(frozen=True)
class Fit:
    """One fit to run: its configs, run folder and extra arguments (see :func:`fit`).

    ``threads``: the model's intra-op threads in the fit (``torch.set_num_threads`` in a forked
    fit, ``OMP_NUM_THREADS`` in a fresh one), which the fit may still lower
    (``mmfuse.lit.cpu_threads``); None: the fit decides.
    """

    configs: tuple[str, ...]
    run_dir: Path
    extra: tuple[str, ...] = ()
    threads: int | None = None

    def command(self) -> list[str]:
        return fit_command(self.configs, self.run_dir, self.extra)


@dataclass
class Running:
    """A fit started by :func:`start`: its process, and what :meth:`finish` needs once it has ended."""

    fit: Fit
    pid: int
    log: IO[str]  # the process's stdout and stderr
    started: float  # time.perf_counter() just before the fork
    load: float  # the 1-minute load average then
    started_at: float  # time.time() then

    def finish(self, status: int, usage: resource.struct_rusage, ended: float) -> FitResult:
        """The fit's result, from the exit ``status`` and resource ``usage`` that ``os.wait4`` gave
        for it, the ``time.perf_counter()`` when it ``ended``, and the files it left; also written to
        its ``fit_result.json``."""
        wall = ended - self.started
        code = os.waitstatus_to_exitcode(status)
        cmd = self.fit.command()
        self.log.seek(0)
        output = self.log.read()
        self.log.close()
        if code:
            tail = "\n".join(output.splitlines()[-20:])
            raise RuntimeError(f"{' '.join(cmd)} failed with code {code}:\n{tail}")
        run_dir = self.fit.run_dir
        newest = max(run_dir.glob("**/test_metrics.json"), key=lambda p: p.stat().st_mtime)
        metrics = json.loads(newest.read_text())
        checkpoint = metrics.pop("checkpoint", "")
        result = FitResult(
            metrics={k: float(v) for k, v in metrics.items()},
            params=count_parameters(Path(checkpoint)) if Path(checkpoint).is_file() else 0,
            wall_s=wall,
            run_dir=newest.parent,
            load=(self.load, os.getloadavg()[0]),
            # the process's own and that of its children it waited for (the DataLoader workers)
            cpu_s=usage.ru_utime + usage.ru_stime,
            times=(self.started_at, self.started_at + wall),
        )
        saved = {**asdict(result), "run_dir": str(result.run_dir), "command": cmd}
        (run_dir / RESULT_FILE).write_text(json.dumps(saved, indent=2) + "\n")
        return result


def start(one: Fit, forked: bool = False) -> Running:
    """Start one fit in a child process (``forked`` and the wall time: as :func:`fit`) and return at once."""
    if forked:
        preload()  # a no-op when done already
    log = tempfile.TemporaryFile("w+")  # noqa: SIM115  (read and closed by Running.finish)
    load = os.getloadavg()[0]
    sys.stdout.flush()
    sys.stderr.flush()
    started, started_at = time.perf_counter(), time.time()
    pid = os.fork()
    if pid == 0:
        _child(one.command(), log, forked, one.threads)  # never returns
    return Running(one, pid, log, started, load, started_at)


def _child(cmd: Sequence[str], log: IO[str], forked: bool, threads: int | None) -> NoReturn:
    """In the forked child: become ``cmd``, its output into ``log``."""

    def run() -> None:
        if not forked:  # a fresh interpreter
            env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
            os.execvpe(cmd[0], list(cmd), env)
        if threads:
            torch.set_num_threads(threads)
        from mmfuse.main import main

        main(list(cmd[1:]))

    _exit_after(run, log)


def _exit_after(body: Callable[[], object], log: IO[str]) -> NoReturn:
    """In a forked child: call ``body`` from the repository root, its output into ``log``, and exit
    with its code (0, ``SystemExit``'s, or 1 after printing an exception); never returns."""
    code = 1
    try:
        os.chdir(ROOT)
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        # Python's own streams onto those descriptors too: a test runner may have pointed them
        # elsewhere (pytest's capture writes sys.stderr to a file of its own, not to fd 2)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        body()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        # what an interpreter's normal exit does and os._exit skips: stop the daemonic children still
        # running (persistent DataLoader workers) and wait for them, so that their CPU time is in the
        # fit's (os.wait4 counts only children waited for)
        for child in multiprocessing.active_children():
            child.terminate()
            child.join()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def in_child(body: Callable[[], object], what: str) -> None:
    """Call ``body`` in a forked child of this process, from the repository root, and wait for it:
    work that must not run torch in this process, which forks the fits (:func:`preload`).

    Raises:
        RuntimeError: ``body`` failed; the message names ``what`` it did and ends with its output.
    """
    with tempfile.TemporaryFile("w+") as log:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _exit_after(body, log)
        _, status = os.waitpid(pid, 0)
        if code := os.waitstatus_to_exitcode(status):
            log.seek(0)
            tail = "\n".join(log.read().splitlines()[-20:])
            raise RuntimeError(f"{what} failed with code {code}:\n{tail}")


def fit_all(fits: Sequence[Fit], jobs: int = 1, forked: bool = False) -> Iterator[tuple[int, FitResult]]:
    """Run ``fits``, ``jobs`` at a time, started in their order; yield ``(index, result)`` as each ends.

    ``index`` is the fit's place in ``fits``. A fit that fails stops new ones from starting; those
    running are waited for (their results kept in their run folders), then the error of the first
    failed fit in ``fits``' order is raised, whichever ended first.
    """
    todo = list(enumerate(fits))
    running: dict[int, tuple[int, Running]] = {}  # pid -> (index, fit)
    failed: dict[int, RuntimeError] = {}
    while todo or running:
        while todo and not failed and len(running) < max(1, jobs):
            index, one = todo.pop(0)
            started = start(one, forked)
            running[started.pid] = (index, started)
        if not running:
            break
        pid, status, usage = _wait_any(list(running))
        ended = time.perf_counter()
        index, process = running.pop(pid)
        try:
            result = process.finish(status, usage, ended)
        except RuntimeError as error:
            failed[index] = error
            continue
        yield index, result
    if failed:
        raise failed[min(failed)]


def _wait_any(pids: Sequence[int]) -> tuple[int, int, resource.struct_rusage]:
    """Wait until one of ``pids`` (children of this process) ends: its pid, status and resource usage.

    Polls each pid rather than ``os.wait4(-1)``, which could reap a child that is not a fit
    (one that a library started, and will wait for itself).
    """
    while True:
        for pid in pids:
            ended, status, usage = os.wait4(pid, os.WNOHANG)
            if ended:
                return ended, status, usage
        time.sleep(0.2)


def preload() -> float:
    """Import the ``mmfuse`` command into this process, for :func:`fit` ``forked=True``; the seconds it took.

    Only imports: this process must run no torch computation before forking (a thread pool that
    exists in the parent does not survive a fork).
    """
    start = time.perf_counter()
    import mmfuse.main  # noqa: F401  (Lightning, torchmetrics, the CLI)

    return time.perf_counter() - start


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
        times=tuple(saved.get("times", (0.0, 0.0))),
    )


def count_parameters(checkpoint: Path) -> int:
    """The model's parameters (encoders, fuser, heads) in a Lightning checkpoint, buffers left out."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    return sum(v.numel() for k, v in state.items() if k.startswith("model.") and not k.endswith(_BUFFERS))
