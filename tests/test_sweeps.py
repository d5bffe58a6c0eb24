"""W&B sweep files: every parameter, with every value it can take, is a valid `mmfuse fit` option."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

from mmfuse.main import main

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = sorted((ROOT / "configs" / "sweeps").glob("*.yaml"))


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the sweep commands name configs relative to the repository root


def _values(name: str, spec: dict[str, Any]) -> list[Any]:
    """The values to try: every listed value, or both ends of a distribution."""
    if "values" in spec:
        return list(spec["values"])
    if "value" in spec:
        return [spec["value"]]
    if "min" in spec and "max" in spec:
        return [spec["min"], spec["max"]]
    raise AssertionError(f"parameter {name!r}: no values, value or min/max")


def _lookup(config: dict[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = node[part]
    return node["class_path"] if isinstance(node, dict) and "class_path" in node else node


def test_there_are_sweeps() -> None:
    assert {p.stem for p in SWEEPS} >= {"fusion", "cross_attention"}


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_sweep_parameters_are_cli_arguments(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = yaml.safe_load(path.read_text())
    assert sweep["metric"] == {"name": "val/acc", "goal": "maximize"}
    command = sweep["command"]
    assert command[:3] == ["${env}", "mmfuse", "fit"] and command[-1] == "${args}", command
    values = {name: _values(name, spec) for name, spec in sweep["parameters"].items()}
    # as many trials as the longest value list, each parameter cycling through its values
    for trial in range(max(len(v) for v in values.values())):
        chosen = {name: {"value": v[trial % len(v)]} for name, v in values.items()}
        flags = create_sweep_command_args({"args": chosen})["args"]  # what `wandb agent` appends
        with pytest.raises(SystemExit) as info:
            main(["fit", *command[3:-1], *flags, "--print_config"])
        printed = capsys.readouterr()
        assert info.value.code == 0, f"{path.name}: {flags}\n{printed.err[-2000:]}"
        config = yaml.safe_load(printed.out)
        for name, spec in chosen.items():
            assert _lookup(config, name) == spec["value"], (path.name, name)
