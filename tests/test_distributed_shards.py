"""DDP on the CPU (gloo) reading WebDataset shards: exact evaluation and predict once per sample."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.test_distributed import DDP2, _evaluation, _metrics, _mmfuse, _mmfuse_here, odd_manifest

__all__ = ["odd_manifest"]  # a fixture, imported to be found


@pytest.fixture(scope="module")
def odd_shards(odd_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The odd manifest packed by `pack`, 70 samples a shard: train (60) in one shard, fewer than the
    2 processes; val and test (101 each) in two uneven shards (70 + 31)."""
    out = tmp_path_factory.mktemp("shards")
    _mmfuse_here(
        "pack",
        "--config",
        "configs/quickstart.yaml",
        "--data.init_args.source=mmfuse.data.ManifestSource",
        f"--data.init_args.source.init_args.path={odd_manifest}",
        f"--out={out}",
        "--samples_per_shard=70",
        "--workers=0",
    )
    assert sorted(p.name for p in out.glob("*.tar")) == [
        "test-000000.tar",
        "test-000001.tar",
        "train-000000.tar",
        "val-000000.tar",
        "val-000001.tar",
    ]
    return out / "source.yaml"


def _args(source: Path, run_dir: Path) -> list[str]:
    return [
        "--config",
        "configs/quickstart.yaml",
        f"--data.init_args.source={source}",
        "--data.init_args.num_workers=0",
        "--data.init_args.batch_size=16",
        "--trainer.max_epochs=1",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={run_dir}",
    ]


def test_ddp_on_shards_evaluates_exactly_and_predicts_each_key_once(
    odd_shards: Path,
    odd_manifest: Path,
    tmp_path: Path,
) -> None:
    _mmfuse("fit", *_args(odd_shards, tmp_path / "fit"), *DDP2)
    fitted = _metrics(tmp_path / "fit", "test")  # tested on 2 processes at the end of fit
    best = fitted.pop("checkpoint")
    # the same checkpoint on 1 process: identical test metrics
    _mmfuse_here("test", *_args(odd_shards, tmp_path / "test1"), f"--ckpt_path={best}")
    one = _evaluation(best, "test")
    keys = [k for k in fitted if k != "checkpoint"]
    assert keys and keys == [k for k in one if k != "checkpoint"]
    for key in keys:
        expected = pytest.approx(fitted[key], rel=1e-6) if key.endswith("/loss") else fitted[key]
        assert one[key] == expected, key  # counts exact; a loss is a float sum in another order
    # 101 samples, 2 processes: every sample counted once (accuracy is a multiple of 1/101)
    assert round(one["test/acc"] * 101, 4) == round(one["test/acc"] * 101)

    out = tmp_path / "pred.csv"
    _mmfuse(
        "predict",
        *_args(odd_shards, tmp_path / "pred"),
        f"--ckpt_path={best}",
        f"--predictions.output={out}",
        *DDP2,
    )
    with out.open() as f:
        ids = [row["id"] for row in csv.DictReader(f)]
    with odd_manifest.open() as f:
        test_ids = [row["id"] for row in csv.DictReader(f) if row["split"] == "test"]
    assert sorted(ids) == sorted(test_ids)  # each test key exactly once
