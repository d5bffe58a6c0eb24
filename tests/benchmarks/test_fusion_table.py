"""benchmarks/fusion_table.py --quick: one fuser, one seed, the table's columns (figures: the script's)."""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: --quick on the relational task, fusers only
QUICK = ["--quick", "--tasks", "relational", "--no-baselines"]


def test_rows_come_from_the_config_folders(load_benchmark: Callable[[str], ModuleType]) -> None:
    table = load_benchmark("fusion_table")
    fusers = table.fusers()
    assert {"concat", "late", "cross_attention"} <= set(fusers)
    assert set(fusers) == {p.stem for p in (ROOT / "configs/fusion").glob("*.yaml")}
    # the relational task has image and text only: no audio baseline there
    assert set(table.baselines("relational")) == {"image only", "text only"}
    assert {"image only", "text only", "audio only"} <= set(table.baselines("quickstart"))
    assert "graph only" not in table.baselines("quickstart")


def no_fit(fits: list[object], *args: object, **kwargs: object) -> Iterator[object]:
    """Stands in for ``fit_all`` where every fit is kept (``--reuse``)."""
    assert not fits, "fit again"
    return iter(())


def test_quick_table_has_its_columns(
    load_benchmark: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    table = load_benchmark("fusion_table")
    # one model thread: the fit is a fork of this test process, whose OpenMP threads other tests may
    # have started, and a fork's first parallel region then waits for them forever
    monkeypatch.setattr(table, "fit_threads", lambda jobs, workers: 1)
    out = tmp_path / "table.md"
    args = [*QUICK, "--fusers", "concat", "--seeds", "0", "--jobs", "1"]
    lines = table.main([*args, "--output", str(out), "--runs", str(tmp_path / "runs")])
    assert out.read_text().splitlines() == lines
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == [
        "task",
        "run",
        "test acc (mean ± std)",
        "seeds",
        "parameters",
        "wall time per fit",
        "CPU time per fit",
    ]
    [row] = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    task, run, acc, seeds, params, wall, cpu = row
    assert (task, run, seeds) == ("relational", "concat", "1")
    mean, std = acc.split(" ± ")
    assert 0 <= float(mean) <= 1 and float(std) == 0
    assert int(params.replace(",", "")) > 10_000 and wall.endswith(" s") and float(cpu.removesuffix(" s")) > 0
    assert not (ROOT / "runs" / "fusion_table" / "data").exists()  # --quick data in its own folder

    # --reuse: the finished fit (same command) is read back, not run again
    monkeypatch.setattr(table, "fit_all", no_fit)
    assert table.main([*args, "--reuse", "--runs", str(tmp_path / "runs")]) == lines
    run_dir = tmp_path / "runs" / "relational" / "concat" / "seed0"
    assert table.load_result(run_dir, ["mmfuse", "fit", "--trainer.max_epochs=2"]) is None  # other settings


def _rows(lines: list[str]) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:] if line.startswith("| ")]


def test_two_fits_at_once_keep_to_their_own_run_folders(
    load_benchmark: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--jobs 2: both fits run side by side, each writes only its own folder, each row gets its own result."""
    table, fit_runs = load_benchmark("fusion_table"), load_benchmark("fit_runs")
    runs = tmp_path / "runs"
    args = [*QUICK, "--fusers", "concat", "late", "--seeds", "0", "--runs", str(runs)]
    lines = table.main([*args, "--jobs", "2"])
    rows = _rows(lines)
    assert [(task, run, seeds) for task, run, _, seeds, *_ in rows] == [
        ("relational", "concat", "1"),
        ("relational", "late", "1"),
    ]
    assert "2 at a time" in lines[-1]  # the note under the table: the wall times were shared
    spans = []
    for name, row in zip(["concat", "late"], rows, strict=True):
        folder = runs / "relational" / name / "seed0"
        saved = json.loads((folder / fit_runs.RESULT_FILE).read_text())
        command = saved["command"]
        assert f"configs/fusion/{name}.yaml" in command  # its own config...
        assert command[command.index("--trainer.default_root_dir") + 1] == str(folder)  # ...and folder
        [metrics] = folder.glob("**/test_metrics.json")  # no other fit's metrics in it
        assert Path(saved["run_dir"]) == metrics.parent
        checkpoint = Path(json.loads(metrics.read_text())["checkpoint"])
        assert checkpoint.is_relative_to(folder)
        # the row's parameters are those of the checkpoint in its own folder (concat's and late's differ)
        assert int(row[4].replace(",", "")) == fit_runs.count_parameters(checkpoint) == saved["params"]
        spans.append(saved["times"])
    assert rows[0][4] != rows[1][4]
    (start_a, end_a), (start_b, end_b) = spans
    assert start_a < end_b and start_b < end_a  # they ran at the same time

    # one at a time, the same commands: nothing to fit again, the same rows
    monkeypatch.setattr(table, "fit_all", no_fit)
    assert _rows(table.main([*args, "--jobs", "1", "--reuse"])) == rows


def test_each_result_goes_to_its_fit_whichever_ends_first(
    load_benchmark: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """fit_all matches an ended process to its fit by pid: here the second fit ends first."""
    fit_runs = load_benchmark("fit_runs")

    def fake_child(cmd: list[str], log: object, forked: bool, threads: int | None) -> None:
        run_dir = Path(cmd[-1])  # --trainer.default_root_dir, last
        index = int(run_dir.name)

        def body() -> None:  # the first fit takes longest; each writes its own index as its accuracy
            time.sleep(0.6 - 0.5 * index)
            (run_dir / "version_0").mkdir(parents=True)
            (run_dir / "version_0" / "test_metrics.json").write_text(json.dumps({"test/acc": index}))

        fit_runs._exit_after(body, log)

    monkeypatch.setattr(fit_runs, "_child", fake_child)
    fits = [fit_runs.Fit(("configs/quickstart.yaml",), tmp_path / str(i)) for i in (0, 1)]
    ended = list(fit_runs.fit_all(fits, jobs=2))
    assert [index for index, _ in ended] == [1, 0]
    for index, result in ended:
        assert result.metrics == {"test/acc": index} and result.run_dir == tmp_path / str(index) / "version_0"
    assert ended[1][1].wall_s > ended[0][1].wall_s


def _busy_then_idle() -> None:
    """A persistent DataLoader worker's life: work, then wait for more that never comes."""
    end = time.process_time() + 0.5
    while time.process_time() < end:
        pass
    time.sleep(600)


def test_a_fit_s_cpu_time_counts_its_workers_still_running(
    load_benchmark: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A forked fit ends with os._exit: its persistent workers, still alive, are waited for first."""
    fit_runs = load_benchmark("fit_runs")

    def fake_child(cmd: list[str], log: object, forked: bool, threads: int | None) -> None:
        run_dir = Path(cmd[-1])

        def body() -> None:
            multiprocessing.get_context("fork").Process(target=_busy_then_idle, daemon=True).start()
            time.sleep(1.0)  # the worker has done its 0.5 s of work and waits
            (run_dir / "version_0").mkdir(parents=True)
            (run_dir / "version_0" / "test_metrics.json").write_text(json.dumps({"test/acc": 1.0}))

        fit_runs._exit_after(body, log)

    monkeypatch.setattr(fit_runs, "_child", fake_child)
    [(_, result)] = fit_runs.fit_all([fit_runs.Fit(("configs/quickstart.yaml",), tmp_path / "0")], jobs=1)
    assert result.cpu_s > 0.4 and result.wall_s < 60  # the worker's CPU counted, and it did not wait 600 s


def test_a_failed_fit_names_its_command(load_benchmark: Callable[[str], ModuleType], tmp_path: Path) -> None:
    fit_runs = load_benchmark("fit_runs")
    fits = [
        fit_runs.Fit(("configs/quickstart.yaml", f"configs/missing{i}.yaml"), tmp_path / f"{i}")
        for i in (0, 1)
    ]
    # both fail side by side; the first in order is reported, with the end of its own output
    with pytest.raises(RuntimeError, match=r"configs/missing0\.yaml .* failed with code [1-9]") as error:
        list(fit_runs.fit_all(fits, jobs=2, forked=True))
    assert "File does not exist" in str(error.value)
    assert "missing0.yaml'" in str(error.value).split("failed with code")[1]


def test_settings_are_arguments_the_task_configs_accept(load_benchmark: Callable[[str], ModuleType]) -> None:
    from mmfuse.commands.config import parse_config

    table = load_benchmark("fusion_table")
    assert set(table.SETTINGS) == set(table.TASKS)
    for task, settings in table.SETTINGS.items():
        config = parse_config([*table.config_args(table.TASKS[task]), *settings.args(task)])
        assert config.trainer.max_epochs == settings.max_epochs
        assert config.data.init_args.batch_size == settings.batch_size
        assert config.data.init_args.num_workers == settings.num_workers
        source = config.data.init_args.source.init_args
        if settings.num_samples is None:  # the data as it ships, in its own folder
            shipped = parse_config(table.config_args(table.TASKS[task])).data.init_args.source.init_args
            assert (source.num_samples, source.root) == (shipped.num_samples, shipped.root)
        else:  # another size never overwrites the shipped copy
            assert source.num_samples == settings.num_samples
            assert source.root == f"data/fusion_table/{task}_{settings.num_samples}"


def test_relational_task_warms_the_learning_rate_up(load_benchmark: Callable[[str], ModuleType]) -> None:
    """Early fusion stays at chance on the relational task when its first steps take the full lr."""
    import torch

    from mmfuse.commands.config import parse_config
    from mmfuse.lit.schedules import WarmupCosine

    table = load_benchmark("fusion_table")
    scheduler = parse_config(table.config_args(table.TASKS["relational"])).model.scheduler
    assert scheduler is not None and scheduler.class_path == "mmfuse.lit.schedules.WarmupCosine"
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = WarmupCosine(optimizer, **{**vars(scheduler.init_args), "total_steps": 330})
    factors = [schedule.factor(step) for step in (0, 16, 33, 200, 330)]
    assert factors[0] == 0 and 0 < factors[1] < 1  # warms up from zero...
    assert factors[2:] == [1.0, 1.0, 1.0]  # ...to the optimizer's lr, then keeps it
