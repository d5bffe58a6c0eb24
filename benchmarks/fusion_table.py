"""Compare every fuser and each single-modality baseline on the quickstart and the relational task.

    python benchmarks/fusion_table.py                                    # everything, 3 seeds
    python benchmarks/fusion_table.py --jobs 1                           # one fit at a time
    python benchmarks/fusion_table.py --tasks relational --fusers concat cross_attention --seeds 0
    python benchmarks/fusion_table.py --output runs/fusion_table.md      # also write the table

The fusers are the files in configs/fusion/ (a new one is a new row, nothing to edit here); the
baselines are the configs/baselines/*_only.yaml files whose modalities the task's data has. Each
row is one `mmfuse fit` per seed (`--seed_everything`, which also seeds the data order), in a
process of its own, with the CSV logger. ``--jobs`` fits run at once (default: one per core, as one
fit keeps about one core busy), each with the same model threads: its share of the cores less its
loader workers, at least 1. The table gives the test accuracy of the best checkpoint as mean ±
standard deviation over the seeds, the model's parameters (encoders, fuser and heads), and the mean
wall time (start-up, fit and test; with fits side by side, it includes sharing the cores) and CPU
time of one fit. Each task's data is generated before its first row; that time is printed apart.

The fits start seed by seed (every row's seed 0, then every row's seed 1, ...), so the first pass
is an early look at the whole table; each fit's result is also printed as it comes, with the load
average at its start and end (wall times mean little on a loaded machine), and kept in its run
folder, so ``--reuse`` finishes an interrupted table without fitting again what has finished.

The settings, per task (:data:`SETTINGS`), are passed to every fit of the task as command-line
arguments, the same for every row; the configs stay as they ship. Every fit keeps the checkpoint of
the best validation accuracy and tests it on the test split. Why these: docs/fusion.md.

- quickstart: its data as it ships (3,000 samples, ``data/synthetic/``, 450 test), 4 epochs at
  batch 32 (264 steps) rather than 10 at 64: it cannot tell fusers apart anyway.
- relational: the config's own, 10 epochs at batch 64 on its 3,000 samples (``data/relational/``,
  450 test): with less, token-level fusion had not yet found the named dot.

Both keep the configs' 2 DataLoader workers. ``--quick`` replaces all this with 60 samples, one
epoch, no workers: a check of the machinery.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # fit_runs.py beside it, however this file is run
from fit_runs import ROOT, Fit, FitResult, config_args, fit_all, in_child, load_result, preload

#: task -> the configs that set it up (a row's config goes after them)
TASKS = {
    "quickstart": ["configs/quickstart.yaml"],
    "relational": ["configs/quickstart.yaml", "configs/experiments/relational.yaml"],
}
#: every fit of the table: a CSV log instead of W&B, plain lines instead of a progress bar
COMMON = ["--config", "configs/logger/csv.yaml", "--trainer.enable_progress_bar=false"]


@dataclass(frozen=True)
class Settings:
    """What the table changes in a task's configs (see the module docstring for why).

    Attributes:
        max_epochs: epochs per fit.
        batch_size: training (and evaluation) batch size.
        num_workers: DataLoader workers.
        num_samples: the size of the task's synthetic data, in a folder of its own under
            ``data/fusion_table/``; None: the config's (and its folder).
    """

    max_epochs: int
    batch_size: int
    num_workers: int
    num_samples: int | None = None

    def args(self, task: str) -> list[str]:
        """The fit's arguments; a data size of its own gets a data folder of its own."""
        out = [
            f"--trainer.max_epochs={self.max_epochs}",
            f"--data.init_args.batch_size={self.batch_size}",
            f"--data.init_args.num_workers={self.num_workers}",
        ]
        if self.num_samples is not None:
            source = "--data.init_args.source.init_args"
            root = f"data/fusion_table/{task}_{self.num_samples}"  # from the repository root, as the configs
            out += [f"{source}.num_samples={self.num_samples}", f"{source}.root={root}"]
        return out


#: task -> the table's settings for it
SETTINGS = {
    "quickstart": Settings(max_epochs=4, batch_size=32, num_workers=2),
    "relational": Settings(max_epochs=10, batch_size=64, num_workers=2),  # the config's own: see above
}


def quick_args(runs: Path, task: str) -> list[str]:
    """--quick: a smoke run of the machinery (tiny data of its own, one epoch), not a measurement."""
    return [
        "--trainer.max_epochs=1",
        f"--data.init_args.source.init_args.root={runs / 'data' / task}",
        "--data.init_args.source.init_args.num_samples=60",
        "--data.init_args.num_workers=0",
    ]


def fusers() -> dict[str, str]:
    """Row name -> config: every ``configs/fusion/*.yaml``, by file name."""
    return {p.stem: p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "configs/fusion").glob("*.yaml"))}


def _modalities(config: str) -> set[str]:
    """The modalities a config's data section names (empty when it names none)."""
    data = yaml.safe_load((ROOT / config).read_text()) or {}
    found = (data.get("data") or {}).get("init_args", {}).get("modalities") or {}
    return set(found)


def baselines(task: str) -> dict[str, str]:
    """Row name -> config: the single-modality baselines whose modality the task's data has."""
    have: set[str] = set()
    for config in TASKS[task]:
        have = _modalities(config) or have  # a later config's modalities replace the earlier ones
    rows = {}
    for path in sorted((ROOT / "configs/baselines").glob("*_only.yaml")):
        config = path.relative_to(ROOT).as_posix()
        if _modalities(config) <= have:
            rows[f"{path.stem.removesuffix('_only')} only"] = config
    return rows


def _prepare(task: str, data_args: Sequence[str]) -> None:
    """Generate the task's data now, once, so that its time is not the first row's (and fits that
    run at once do not each start writing it)."""

    def prepare() -> None:
        from mmfuse.commands.config import build_data, parse_config

        build_data(parse_config([*config_args(TASKS[task]), *data_args])).prepare_data()

    in_child(prepare, f"generating the {task} data")


def _row(task: str, name: str, results: Sequence[FitResult]) -> str:
    accs = [r.metrics["test/acc"] for r in results]
    spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
    wall = statistics.mean(r.wall_s for r in results)
    cpu = statistics.mean(r.cpu_s for r in results)
    params = results[0].params
    acc = f"{statistics.mean(accs):.3f} ± {spread:.3f}"
    return f"| {task} | {name} | {acc} | {len(accs)} | {params:,} | {wall:.0f} s | {cpu:.0f} s |"


def _progress(result: FitResult) -> str:
    start, end = result.load
    acc = result.metrics["test/acc"]
    return (
        f"test acc {acc:.3f}, {result.wall_s:.0f} s, CPU {result.cpu_s:.0f} s, "
        f"load average {start:.1f} -> {end:.1f}"
    )


HEADER = [
    "| task | run | test acc (mean ± std) | seeds | parameters | wall time per fit | CPU time per fit |",
    "|---|---|---|---|---|---|---|",
]


def available_cores() -> int:
    """The cores this process may use (imported here, so that :func:`preload` times the whole import)."""
    from mmfuse.lit.cpu_threads import available_cores

    return available_cores()


def fit_threads(jobs: int, workers: int) -> int:
    """The model's threads in each fit when ``jobs`` fits run at once, each with ``workers`` loader
    workers (as ``share_cores`` gives a node's training processes)."""
    from mmfuse.lit.cpu_threads import model_threads

    return model_threads(workers, processes_per_node=jobs)


#: under a table whose fits shared the machine
SHARED_NOTE = (
    "Fits ran {jobs} at a time: a fit's wall time includes sharing the cores with the others; "
    "its CPU time is its own."
)


@dataclass(frozen=True)
class Planned:
    """One fit of the table: which task, row and seed it is for."""

    task: str
    row: str
    seed: int
    fit: Fit


#: task -> row -> seed -> result
Results = dict[str, dict[str, dict[int, FitResult]]]


def main(argv: Sequence[str] | None = None) -> list[str]:
    """Run the table; returns its markdown lines (also printed, row by row)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if unknown := [f for f in args.fusers or [] if f not in fusers()]:
        parser.error(f"unknown fusers {unknown}: choose from {', '.join(fusers())}")
    jobs = args.jobs or available_cores()  # a fit keeps about one core busy
    if jobs < 1:
        parser.error(f"--jobs {jobs}: at least 1")
    lines = list(HEADER)
    print("\n".join(lines), flush=True)
    if not args.fresh_processes:
        print(f"<!-- the mmfuse command imported in {preload():.1f} s, once; each fit forks from here -->")
    results, todo = _plan(args, jobs)
    threads = sorted({p.fit.threads or 0 for p in todo})
    print(
        f"<!-- {len(todo)} fits to run, {jobs} at a time on {available_cores()} cores, "
        f"model threads per fit: {'/'.join(map(str, threads))} -->",
        flush=True,
    )
    tasks = list(args.tasks)

    def finished_tasks() -> None:  # each task's rows, once its fits (and those of the tasks before) are done
        while tasks and not any(p.task == tasks[0] for p in todo):
            for name, by_seed in results[tasks[0]].items():
                lines.append(_row(tasks[0], name, [by_seed[s] for s in sorted(by_seed)]))
                print(lines[-1], flush=True)
            tasks.pop(0)

    finished_tasks()
    plan = list(todo)
    for index, result in fit_all([p.fit for p in plan], jobs, forked=not args.fresh_processes):
        done = plan[index]
        todo.remove(done)
        results[done.task][done.row][done.seed] = result
        print(f"<!-- {done.task} {done.row} seed {done.seed}: {_progress(result)} -->", flush=True)
        finished_tasks()
    if jobs > 1:
        lines += ["", SHARED_NOTE.format(jobs=jobs)]
        print("\n".join(lines[-2:]), flush=True)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text("\n".join(lines) + "\n")
    return lines


def _plan(args: argparse.Namespace, jobs: int) -> tuple[Results, list[Planned]]:
    """Each task's data generated, its fits listed seed by seed; the results kept (``--reuse``) and
    the fits still to run."""
    results: Results = {}
    todo: list[Planned] = []
    for task in args.tasks:
        data_args = quick_args(args.runs, task) if args.quick else SETTINGS[task].args(task)
        threads = fit_threads(jobs, 0 if args.quick else SETTINGS[task].num_workers)
        print(f"<!-- {task}: {' '.join(data_args)} -->", flush=True)
        start = time.perf_counter()
        _prepare(task, data_args)
        print(f"<!-- {task}: data ready in {time.perf_counter() - start:.1f} s -->", flush=True)
        rows = {f: fusers()[f] for f in args.fusers or fusers()}
        if not args.no_baselines:
            rows.update(baselines(task))
        results[task] = {name: {} for name in rows}
        for seed in args.seeds:  # every row's first seed first: an early look at the whole table
            for name, config in rows.items():
                extra = (*COMMON, f"--seed_everything={seed}", *data_args)
                run_dir = args.runs / task / name.replace(" ", "_") / f"seed{seed}"
                planned = Planned(task, name, seed, Fit((*TASKS[task], config), run_dir, extra, threads))
                done = load_result(run_dir, planned.fit.command()) if args.reuse else None
                if done:
                    results[task][name][seed] = done
                    print(f"<!-- {task} {name} seed {seed}: {_progress(done)} (kept) -->", flush=True)
                else:
                    todo.append(planned)
    return results, todo


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tasks", nargs="+", choices=list(TASKS), default=list(TASKS), help="tasks (default: all)"
    )
    parser.add_argument(
        "--fusers",
        nargs="+",
        metavar="FUSER",
        help=f"fusers, by configs/fusion/ file name (default: all: {', '.join(fusers())})",
    )
    parser.add_argument("--no-baselines", action="store_true", help="leave out the single-modality baselines")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (default: 0 1 2)")
    parser.add_argument(
        "--quick", action="store_true", help="tiny data, one epoch: checks the machinery only"
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the fits that finished in --runs before with the same command (their "
        "fit_result.json), run the others: finishes an interrupted table",
    )
    parser.add_argument(
        "--fresh-processes",
        action="store_true",
        help="start every fit in a fresh interpreter (default: a fork of this one, which has "
        "imported the mmfuse command once: ~5 s less per fit)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        help="fits at once (default: one per core this process may use); each fit's model threads "
        "are its share of the cores less its loader workers, at least 1",
    )
    parser.add_argument("--output", type=Path, help="also write the table (markdown) to this file")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "fusion_table", help="where the runs go")
    return parser


if __name__ == "__main__":
    main()
