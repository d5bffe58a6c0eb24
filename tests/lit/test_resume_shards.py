"""Crash-safe resume when the data comes from WebDataset shards: the same weights as a run never killed."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import torch

from mmfuse.commands.pack import pack
from mmfuse.data import AudioDataModule, ImageDataModule, SyntheticSource, TextDataModule

SCRIPT = Path(__file__).with_name("resume_script.py")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)


def test_sigkill_on_shards_then_resume_gives_the_uninterrupted_weights(
    synthetic_root: Path, tmp_path: Path
) -> None:
    source = SyntheticSource(root=str(synthetic_root), num_samples=160, image_size=24)
    modalities = {"audio": AudioDataModule(), "image": ImageDataModule(), "text": TextDataModule()}
    pack(source, modalities, str(tmp_path / "shards"), samples_per_shard=50, workers=0)  # 112 train: 3 shards
    shards = ("--shards", str(tmp_path / "shards" / "source.yaml"), "--workers=2")
    full = _run(str(synthetic_root), str(tmp_path / "full"), str(tmp_path / "full.pt"), *shards)
    assert full.returncode == 0, full.stderr[-3000:]
    kill_at = random.Random().randint(4, 12)  # 7 steps an epoch: mid-epoch or across the epoch boundary
    cut = (str(synthetic_root), str(tmp_path / "cut"), str(tmp_path / "cut.pt"), *shards)
    killed = _run(*cut, f"--kill-at={kill_at}")
    assert killed.returncode == -9, (kill_at, killed.stderr[-3000:])
    resumed = _run(*cut, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = torch.load(tmp_path / "full.pt"), torch.load(tmp_path / "cut.pt")
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert a.keys() == b.keys() and not different, f"killed at step {kill_at}: {different[:5]}"
