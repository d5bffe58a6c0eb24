"""benchmarks/fusion_table.py --quick: one fuser, one seed, the table's columns (figures: the script's)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_rows_come_from_the_config_folders(load_benchmark: Callable[[str], ModuleType]) -> None:
    table = load_benchmark("fusion_table")
    fusers = table.fusers()
    assert {"concat", "late", "cross_attention"} <= set(fusers)
    assert set(fusers) == {p.stem for p in (ROOT / "configs/fusion").glob("*.yaml")}
    # the relational task has image and text only: no audio baseline there
    assert set(table.baselines("relational")) == {"image only", "text only"}
    assert {"image only", "text only", "audio only"} <= set(table.baselines("quickstart"))
    assert "graph only" not in table.baselines("quickstart")


def test_quick_table_has_its_columns(
    load_benchmark: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    table = load_benchmark("fusion_table")
    out = tmp_path / "table.md"
    args = ["--quick", "--tasks", "relational", "--fusers", "concat", "--no-baselines", "--seeds", "0"]
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
    def no_fit(*args: object) -> None:
        raise AssertionError("fit again")

    monkeypatch.setattr(table, "fit", no_fit)
    assert table.main([*args, "--reuse", "--runs", str(tmp_path / "runs")]) == lines
    run_dir = tmp_path / "runs" / "relational" / "concat" / "seed0"
    assert table.load_result(run_dir, ["mmfuse", "fit", "--trainer.max_epochs=2"]) is None  # other settings


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
