"""benchmarks/gpu_throughput.py runs on the CPU with a tiny model and prints every column (never rots)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import quickstart_args

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_throughput", ROOT / "benchmarks" / "gpu_throughput.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_throughput"] = module
    spec.loader.exec_module(module)
    return module


def test_every_column_on_cpu(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    bench = _load()
    tiny = quickstart_args(synthetic_root, tmp_path)[2:]  # the quickstart model on the session's tiny data
    tiny = [a for a in tiny if not a.startswith("--trainer.max_epochs")]
    args = ["--config", "configs/quickstart.yaml", "--setups", "fp32", "--accelerator", "cpu"]
    rows = bench.main([*args, "--warmup", "1", "--steps", "2", "--peak_tflops", "1", "--", *tiny])
    [row] = rows
    assert list(row) == bench.COLUMNS
    assert float(row["samples/s"]) > 0 and float(row["step ms"]) > 0 and float(row["first step s"]) > 0
    assert 0 <= float(row["data wait"].rstrip("%")) < 100
    # the quickstart model: ~0.01-1 GFLOP per sample forward + backward, not zero and not absurd
    assert 0.001 < float(row["GFLOP/sample"]) < 10
    # MFU follows from the other columns against the given peak (1 TFLOP/s)
    mfu = float(row["MFU"].rstrip("%"))
    expected = 100 * float(row["GFLOP/sample"]) * 1e9 * float(row["samples/s"]) / 1e12
    assert mfu == pytest.approx(expected, rel=0.02, abs=0.01)  # both from the printed, rounded figures
    assert row["peak GiB"] == "n/a"  # no GPU memory to report on the CPU
    printed = capsys.readouterr().out
    assert "| setup | samples/s |" in printed and "| fp32 |" in printed


def test_peak_is_looked_up_by_gpu_name_and_dtype() -> None:
    bench = _load()
    assert bench.peak_tflops("NVIDIA H200", "bf16-mixed", None) == 989.4
    assert bench.peak_tflops("NVIDIA A100-SXM4-80GB", "32-true", None) == 156.0  # TF32 matmuls
    assert bench.peak_tflops("CPU", "32-true", None) is None
    assert bench.peak_tflops("CPU", "32-true", 2.5) == 2.5
