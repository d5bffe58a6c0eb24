"""benchmarks/overhead.py's three setups run on a tiny dataset (the figures come from the script itself)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import quickstart_args

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("overhead", ROOT / "benchmarks" / "overhead.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["overhead"] = module
    spec.loader.exec_module(module)
    return module


def test_every_setup_trains_the_same_number_of_epochs(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    overhead = _load()
    # the session's tiny synthetic data in place of the quickstart's 3000 samples; no W&B in-process
    tiny = [*quickstart_args(synthetic_root, tmp_path)[2:], "--config", "configs/logger/csv.yaml"]
    tiny = [a for a in tiny if not a.startswith("--trainer.max_epochs")]
    a = overhead.plain(2, str(tmp_path / "a"), *tiny)
    b = overhead.trainer_run(2, str(tmp_path / "b"), *tiny)
    c = overhead.trainer_run(2, str(tmp_path / "c"), *tiny, "--trainer.enable_progress_bar=false")
    assert len(a) == len(b) == len(c) == 2
    assert all(t > 0 for t in (*a, *b, *c))
