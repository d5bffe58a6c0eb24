"""Crash-safe resume: atomic checkpoints, exact data order, exact random state."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mmfuse.lit.resume import AtomicCheckpointIO, RandomState

SCRIPT = Path(__file__).with_name("resume_script.py")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)


def test_sigkill_then_resume_gives_the_uninterrupted_weights(synthetic_root: Path, tmp_path: Path) -> None:
    # decoding in 2 workers: each sample's augmentation seed must not depend on which worker decodes it
    workers = 2
    # 112 train samples / batch 16 = 7 steps an epoch, 14 in all; checkpoints every 3 steps
    full = _run(
        str(synthetic_root), str(tmp_path / "full"), str(tmp_path / "full.pt"), f"--workers={workers}"
    )
    assert full.returncode == 0, full.stderr[-3000:]
    kill_at = random.Random().randint(4, 12)  # mid-epoch or across the epoch boundary
    killed = _run(
        str(synthetic_root),
        str(tmp_path / "cut"),
        str(tmp_path / "cut.pt"),
        f"--workers={workers}",
        f"--kill-at={kill_at}",
    )
    assert killed.returncode == -9, (kill_at, killed.stderr[-3000:])
    assert not (tmp_path / "cut.pt").exists()
    resumed = _run(
        str(synthetic_root),
        str(tmp_path / "cut"),
        str(tmp_path / "cut.pt"),
        f"--workers={workers}",
        "--resume",
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = torch.load(tmp_path / "full.pt"), torch.load(tmp_path / "cut.pt")
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"killed at step {kill_at}: {different[:5]}"


def test_a_crash_while_saving_leaves_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"step": torch.tensor(1)}, path)

    def crash(obj: object, f: object) -> None:
        f.write(b"half a checkpoint")  # type: ignore[attr-defined]
        raise KeyboardInterrupt  # the process dies mid-write

    monkeypatch.setattr("mmfuse.lit.resume.torch.save", crash)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": torch.tensor(2)}, path)
    assert torch.load(path, weights_only=True)["step"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temporary left behind


def test_random_states_come_back_from_a_weights_only_checkpoint(tmp_path: Path) -> None:
    callback = RandomState()
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    torch.save({"RandomState": callback.state_dict()}, tmp_path / "states.ckpt")
    expected = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)])
    torch.manual_seed(9), np.random.seed(9), random.seed(9)  # the resumed process starts elsewhere
    callback.load_state_dict(torch.load(tmp_path / "states.ckpt", weights_only=True)["RandomState"])
    assert torch.equal(torch.rand(4), expected[0])
    assert np.array_equal(np.random.rand(4), expected[1])
    assert [random.random() for _ in range(4)] == expected[2]
