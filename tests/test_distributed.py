"""Real multi-process DDP on the CPU (gloo): exact evaluation, predict once per sample, simulated nodes.

The DDP runs are commands in new processes, as a user starts them; the one-process evaluations they are
compared with run in this process (`_mmfuse_here`), which has imported everything already: a command's
start-up (imports, W&B) is most of its time at these sizes.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mmfuse.data.sources.synthetic import generate
from mmfuse.main import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def odd_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 train, 101 val and 101 test samples: the eval splits do not divide by 2 processes."""
    root = tmp_path_factory.mktemp("odd")
    manifest = generate(root, num_samples=262, seed=3, image_size=24, sample_rate=8000)
    with manifest.open() as f:
        rows = list(csv.DictReader(f))
    for i, row in enumerate(rows):
        row["split"] = "train" if i < 60 else ("val" if i < 161 else "test")
    out = root / "odd.csv"
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out


def _args(manifest: Path, run_dir: Path) -> list[str]:
    return [
        "--config",
        "configs/quickstart.yaml",
        "--data.init_args.source=mmfuse.data.ManifestSource",
        f"--data.init_args.source.init_args.path={manifest}",
        "--data.init_args.num_workers=0",
        "--data.init_args.batch_size=16",
        "--trainer.max_epochs=1",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={run_dir}",
    ]


def _mmfuse(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "mmfuse", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def _mmfuse_here(*args: str) -> None:
    """The same command in this process, from the repository root (configs name paths relative to it)."""
    here = Path.cwd()
    os.chdir(ROOT)
    try:
        main(list(args))
    finally:
        os.chdir(here)


def _metrics(run_dir: Path, stage: str) -> dict[str, float]:
    [path] = run_dir.glob(f"*/*/{stage}_metrics.json")  # the run directory: <root>/<project>/<run id>
    return json.loads(path.read_text())


def _evaluation(checkpoint: str, stage: str) -> dict[str, float]:
    """The newest evaluation of a checkpoint: ``<run>/eval/<time>-<command>/<stage>_metrics.json``."""
    found = Path(checkpoint).parent.parent.glob(f"eval/*/{stage}_metrics.json")
    return json.loads(max(found, key=lambda p: p.stat().st_mtime_ns).read_text())


DDP2 = ["--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp"]


def test_ddp_fit_then_exact_eval_and_predict(odd_manifest: Path, tmp_path: Path) -> None:
    _mmfuse("fit", *_args(odd_manifest, tmp_path / "fit"), *DDP2)
    fitted = _metrics(tmp_path / "fit", "test")
    best = fitted.pop("checkpoint")
    assert len(list((tmp_path / "fit").glob("*/*/checkpoints"))) == 1  # one run, not one per process

    # the same checkpoint on 1 and on 2 processes: identical val and test metrics
    for stage, command in (("val", "validate"), ("test", "test")):
        _mmfuse_here(command, *_args(odd_manifest, tmp_path / f"{stage}1"), f"--ckpt_path={best}")
        one = _evaluation(best, stage)
        _mmfuse(command, *_args(odd_manifest, tmp_path / f"{stage}2"), f"--ckpt_path={best}", *DDP2)
        two = _evaluation(best, stage)
        assert one.keys() == two.keys()
        for key in one:
            if key.endswith("/loss"):
                assert two[key] == pytest.approx(one[key], rel=1e-6), key  # a float sum in another order
            elif key != "checkpoint":
                assert two[key] == one[key], key  # counts: exact
    assert _evaluation(best, "test")["test/acc"] == fitted["test/acc"]
    # 101 samples, 2 processes: every sample counted once (accuracy is a multiple of 1/101)
    assert round(fitted["test/acc"] * 101, 4) == round(fitted["test/acc"] * 101)

    out = tmp_path / "pred.csv"
    _mmfuse(
        "predict",
        *_args(odd_manifest, tmp_path / "pred"),
        f"--ckpt_path={best}",
        f"--predictions.output={out}",
        *DDP2,
    )
    with out.open() as f:
        ids = [row["id"] for row in csv.DictReader(f)]
    with odd_manifest.open() as f:
        test_ids = [row["id"] for row in csv.DictReader(f) if row["split"] == "test"]
    assert sorted(ids) == sorted(test_ids)  # each test sample exactly once


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_simulated_nodes_train_and_match_one_process(odd_manifest: Path, tmp_path: Path) -> None:
    # what torchrun / SLURM set on each node: Lightning reads these and does not launch processes itself
    port = str(_free_port())
    args = [
        "fit",
        *_args(odd_manifest, tmp_path / "nodes"),
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        "--trainer.num_nodes=2",
        "--trainer.strategy=ddp",
    ]
    procs = []
    for node in (0, 1):
        env = {
            **os.environ,
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
            "WORLD_SIZE": "2",
            "NODE_RANK": str(node),
            "LOCAL_RANK": "0",
            "RANK": str(node),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "mmfuse", *args],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-4000:]
    on_two = _metrics(tmp_path / "nodes", "test")
    best = on_two.pop("checkpoint")
    _mmfuse_here("test", *_args(odd_manifest, tmp_path / "one"), f"--ckpt_path={best}")
    on_one = _evaluation(best, "test")
    assert on_one["test/acc"] == on_two["test/acc"] and on_one["test/f1"] == on_two["test/f1"]


def test_ddp_contrastive_trains_and_evaluates_retrieval_exactly(odd_manifest: Path, tmp_path: Path) -> None:
    # batch 10: the two val/test shards (51 and 50 samples) have 6 and 5 batches. The contrastive loss
    # gathers every rank's batch in training only; were it computed in evaluation, the rank with 5
    # batches would leave the other waiting in its 6th all_gather (a hang, caught by the timeout)
    def args(run: str) -> list[str]:  # the experiment's config after the quickstart's, before the overrides
        quickstart, *overrides = _args(odd_manifest, tmp_path / run)[1:]
        config = ["--config", quickstart, "--config", "configs/experiments/contrastive.yaml"]
        return [*config, *overrides, "--data.init_args.batch_size=10"]

    _mmfuse("fit", *args("fit"), *DDP2)
    two = _metrics(tmp_path / "fit", "test")  # tested on 2 processes at the end of fit
    best = two.pop("checkpoint")
    _mmfuse_here("test", *args("one"), f"--ckpt_path={best}")
    one = _evaluation(best, "test")
    recall = [k for k in one if "/retrieval/" in k]
    assert len(recall) == 18  # 3 pairs x 2 directions x recall@{1,5,10}
    for key in recall:
        # every test sample in the gallery once, on 1 and on 2 processes: recall is a multiple of 1/101
        assert two[key] == pytest.approx(one[key], abs=1e-9), key
        assert round(one[key] * 101, 4) == round(one[key] * 101), key


def test_ddp_multitask_eval_equals_one_process(odd_manifest: Path, tmp_path: Path) -> None:
    # three tasks, the regression target empty in ~10% of rows: per-task masked counts summed over ranks
    def args(run: str) -> list[str]:
        quickstart, *overrides = _args(odd_manifest, tmp_path / run)[1:]
        config = ["--config", quickstart, "--config", "configs/experiments/multitask.yaml"]
        return [*config, *overrides]

    _mmfuse("fit", *args("fit"), *DDP2)
    two = _metrics(tmp_path / "fit", "test")  # tested on 2 processes at the end of fit
    best = two.pop("checkpoint")
    _mmfuse_here("test", *args("one"), f"--ckpt_path={best}")
    one = _evaluation(best, "test")
    one.pop("checkpoint")
    assert {"test/label/acc", "test/cues/auroc", "test/tone_khz/r2"} <= one.keys() == two.keys()
    for key in one:
        exact = key.endswith(("/acc", "/f1"))  # counts; losses, AUROC and regression sums: float order
        assert two[key] == (one[key] if exact else pytest.approx(one[key], rel=1e-5)), key
