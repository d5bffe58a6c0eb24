"""What a batch job's log file shows: progress lines from one process, none of the known noise."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import quickstart_args

ROOT = Path(__file__).resolve().parents[1]
NOISE = {
    "litlogger tip": "litlogger",
    "sync_dist warning": "sync_dist=True",
    "LeafSpec FutureWarning": "LeafSpec",
    "stepping-batches note": "to estimate number of stepping batches",
    "dirpath warning": "The dirpath has changed",
}


def _mmfuse_to_file(log: Path, *args: str) -> str:
    """Run the command with stdout and stderr to a file, as a batch system does."""
    with log.open("w") as out:
        result = subprocess.run(
            [sys.executable, "-m", "mmfuse", *args],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=600,
            env={**os.environ, "PYTHONWARNINGS": "default"},  # show every warning that is not filtered
        )
    text = log.read_text()
    assert result.returncode == 0, text[-4000:]
    return text


def test_a_ddp_fit_and_a_test_to_a_file_print_progress_once_and_no_known_noise(
    synthetic_root: Path, tmp_path: Path
) -> None:
    args = [
        *quickstart_args(synthetic_root, tmp_path / "fit"),
        "--trainer.devices=2",
        "--trainer.strategy=ddp",
        "--trainer.max_epochs=2",
        "--trainer.log_every_n_steps=1",
        "--model.scheduler=mmfuse.lit.schedules.WarmupCosine",  # the experiments' default
    ]
    fit = _mmfuse_to_file(tmp_path / "fit.log", "fit", *args)
    # 112 train samples, 2 processes, batches of 32: 2 steps per epoch; lines from rank 0 only
    steps = re.findall(r"^epoch (\d)/2  step (\d)/4  train/loss [\d.]+  [\d.]+ samples/s  ETA ", fit, re.M)
    assert steps == [("1", "1"), ("1", "2"), ("2", "3"), ("2", "4")]
    assert len(re.findall(r"^epoch \d/2  step \d/4  end of epoch  val/acc ", fit, re.M)) == 2
    assert fit.count("training done") == 1
    [metrics] = (tmp_path / "fit").glob("*/*/test_metrics.json")
    best = json.loads(metrics.read_text())["checkpoint"]

    test = _mmfuse_to_file(
        tmp_path / "test.log",
        "test",
        *quickstart_args(synthetic_root, tmp_path / "test"),
        f"--ckpt_path={best}",
    )
    assert "test metrics" in test
    for name, text in NOISE.items():
        assert text not in fit and text not in test, name
