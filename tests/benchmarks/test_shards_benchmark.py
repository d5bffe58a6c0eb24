"""benchmarks/shards.py runs end to end on a few samples: files, pack, shards, loopback HTTP."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

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
