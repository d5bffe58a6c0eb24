"""Shared fixtures: small real datasets on disk (PNG, WAV, text in the manifest)."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from mmfuse.data.sources.synthetic import generate


def write_manifest(path: Path, rows: list[dict[str, str]]) -> Path:
    """Write rows to a CSV manifest with the union of their keys as the header."""
    header: list[str] = []
    for row in rows:
        header += [k for k in row if k not in header]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_png(path: Path, seed: int, size: int = 16) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path.name


def write_wav(path: Path, seed: int, sample_rate: int = 8000, seconds: float = 0.25) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    wave = 0.1 * np.random.default_rng(seed).standard_normal(int(sample_rate * seconds))
    sf.write(path, wave.astype(np.float32), sample_rate)
    return path.name


@pytest.fixture(autouse=True)
def _wandb_offline(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Every test (and the processes it starts) logs to W&B offline, never to a server, never asking
    for a login; W&B's folders go to the session's temp dir, not the repository or the home folder."""
    home = tmp_path_factory.getbasetemp() / "wandb-home"
    monkeypatch.setenv("WANDB_MODE", "offline")
    for var, sub in (
        ("WANDB_DIR", "runs"),
        ("WANDB_DATA_DIR", "data"),
        ("WANDB_CACHE_DIR", "cache"),
        ("WANDB_CONFIG_DIR", "config"),
        ("WANDB_ARTIFACT_DIR", "artifacts"),
    ):
        monkeypatch.setenv(var, str(home / sub))
    monkeypatch.setenv("NETRC", str(home / "no-netrc"))  # no credentials from the machine
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    # faster and quieter: no console capture, git or code snapshots, system metrics
    for var in ("WANDB_CONSOLE", "WANDB_DISABLE_GIT", "WANDB_DISABLE_CODE", "WANDB_SILENT"):
        monkeypatch.setenv(var, "off" if var == "WANDB_CONSOLE" else "true")
    monkeypatch.setenv("WANDB__DISABLE_STATS", "true")
    yield
    # W&B keeps process-wide settings (read from the environment at its first use) in a singleton:
    # drop it, so that the next test's environment is read afresh
    if "wandb" in sys.modules:
        sys.modules["wandb"].teardown()


@pytest.fixture
def small_manifest(tmp_path: Path) -> Path:
    """12 samples (8 train, 2 val, 2 test) with image, text and audio, class names as labels."""
    rows = []
    for i in range(12):
        split = "train" if i < 8 else ("val" if i < 10 else "test")
        rows.append(
            {
                "id": f"s{i}",
                "split": split,
                "image": "media/" + write_png(tmp_path / "media" / f"{i}.png", i),
                "text": f"sample number {i} says {'hello' if i % 2 else 'goodbye'}",
                "audio": "media/" + write_wav(tmp_path / "media" / f"{i}.wav", i),
                "label": "cat" if i % 2 else "dog",
                "notes": "extra columns are ignored",
            }
        )
    return write_manifest(tmp_path / "manifest.csv", rows)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small quickstart-style synthetic dataset, generated once per test session."""
    root = tmp_path_factory.mktemp("synthetic")
    generate(root, num_samples=160, seed=0, image_size=24, sample_rate=8000)
    return root


def quickstart_args(synthetic_root: Path, run_dir: Path, *configs: str) -> list[str]:
    """CLI arguments for a tiny quickstart-style run on the session's small synthetic dataset."""
    args = ["--config", "configs/quickstart.yaml"]
    for config in configs:
        args += ["--config", config]
    return [
        *args,
        "--data.init_args.source.init_args.root",
        str(synthetic_root),
        "--data.init_args.source.init_args.num_samples=160",
        "--data.init_args.source.init_args.image_size=24",
        "--data.init_args.num_workers=0",
        "--data.init_args.batch_size=32",
        "--trainer.max_epochs=1",
        "--trainer.default_root_dir",
        str(run_dir),
    ]
