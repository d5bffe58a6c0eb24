"""benchmarks/shards.py runs end to end on a few samples: files, pack, shards, loopback HTTP."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_shard_benchmark_prints_every_row(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("shards_benchmark", ROOT / "benchmarks" / "shards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["shards_benchmark"] = module
    spec.loader.exec_module(module)
    module.compare(200, model=100.0, repeat=2)
    out = capsys.readouterr().out
    assert out.count("  manifest (per file), 2 workers: ") == 2  # measured twice, the best kept
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 10  # the header, 3 x 3 local rows (per file, shards, decoded), 1 over HTTP
    decoded = "| shards, decoded (--resize_images --audio_features)"
    assert [row.split(" | ")[:2] for row in table[7:10]] == [[decoded, str(w)] for w in (0, 1, 2)]
    assert table[-1].startswith(f"{decoded} over HTTP (loopback) | 2 |")
    assert "| manifest (per file) | 2 |" in table[3] and table[3].endswith("| 392 |")  # 196 train, 2 files


def test_the_index_benchmark_compares_scan_and_index_on_the_same_rows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = importlib.util.spec_from_file_location("shards_benchmark", ROOT / "benchmarks" / "shards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["shards_benchmark"] = module
    spec.loader.exec_module(module)
    module.index_vs_scan(300)
    out = capsys.readouterr().out
    assert "300 tiny samples in 1 shards; the same samples and rows both ways: True" in out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    assert [r.split(" | ")[0] for r in rows[1:]] == ["| the shards' samples", "| load() (+ rows)"]


def test_the_stage_benchmark_times_every_stage_of_every_source(
    load_benchmark: Callable[[str], ModuleType], capsys: pytest.CaptureFixture[str]
) -> None:
    load_benchmark("shards")  # what shard_stages imports its samples from
    load_benchmark("shard_stages").main(["--samples", "60"])
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert table[0] == "| stage | per file | shards | shards, decoded (--resize_images --audio_features) |"
    stages = [line.split(" | ")[0].lstrip("| ") for line in table[1:]]
    assert stages[:5] == ["image: read", "image: decode", "audio: read", "audio: decode", "text: tokenise"]
    assert stages[-1] == "epoch, 0 workers (a sample)"
    for line in table[1:]:
        assert all(cell.strip().lstrip("-").isdigit() for cell in line.strip("| ").split(" | ")[1:]), line
