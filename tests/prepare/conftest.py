"""Helpers for the benchmark converters' tests: load a script of scripts/prepare/ as a module, and
check the manifest it wrote with `mmfuse check-data` through the benchmark's own config."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from mmfuse.main import main

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts" / "prepare"


def load_script(name: str) -> ModuleType:
    """``scripts/prepare/<name>.py`` as a module (its ``_common`` import resolved as when run)."""
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(f"prepare_{name}", SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_rows(manifest: Path) -> list[dict[str, str]]:
    if manifest.suffix == ".jsonl":
        return [json.loads(line) for line in manifest.read_text().splitlines()]
    import csv

    with manifest.open(newline="") as f:
        return list(csv.DictReader(f))


def check_data(config: str, manifest: Path, *overrides: str) -> None:
    """`mmfuse check-data` on the converted manifest through the benchmark's config: no problem."""
    args = ["check-data", "--workers", "0", "--config", config, "--data.init_args.source.init_args.path"]
    main([*args, str(manifest), "--data.init_args.num_workers=0", *overrides])  # exit code 1 raises


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the configs name paths relative to the repository root
    monkeypatch.setattr(sys, "argv", ["mmfuse"])  # LightningCLI warns when given args beside pytest's
