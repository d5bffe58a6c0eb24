"""``mmfuse embed``: every id once and in the split's order, the shapes, and retrieval on a known case."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmfuse.commands.embed import _merge, retrieval
from mmfuse.main import main
from tests.conftest import quickstart_args

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


@pytest.mark.slow  # a fit, an embed, and a 2-process DDP embed started as a new command
def test_embed_writes_each_test_id_once_in_manifest_order_also_under_ddp(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = quickstart_args(synthetic_root, tmp_path, "configs/logger/csv.yaml")
    main(["fit", *args])
    [run] = [p.parent for p in tmp_path.glob("*/*/checkpoints")]
    capsys.readouterr()
    zero_shot = ["--zero-shot", "--prompt", "a {} report"]
    main(["embed", *args, "--ckpt_path", "last", "--retrieval", *zero_shot])
    out = capsys.readouterr().out
    [folder] = (run / "eval").iterdir()  # under the checkpoint's run
    assert folder.name.endswith("-embed") and "embeddings.npz" in out
    arrays = np.load(folder / "embeddings.npz")
    with (synthetic_root / "manifest.csv").open(newline="") as f:
        test_ids = [r["id"] for r in csv.DictReader(f) if r["split"] == "test"]
    assert arrays["ids"].tolist() == test_ids  # each once, in the manifest's order
    n = len(test_ids)
    assert sorted(arrays.files) == sorted(
        ["ids", "fused", "audio", "image", "text", "audio_present", "image_present", "text_present"]
    )
    for key in ("fused", "audio", "image", "text"):
        assert arrays[key].shape == (n, 64) and np.isfinite(arrays[key]).all()
        assert arrays[key].std(axis=0).max() > 0  # one row per sample, not one repeated
    assert arrays["image_present"].dtype == bool and arrays["image_present"].all()
    report = json.loads((folder / "retrieval.json").read_text())
    assert sorted(report["pairs"]) == ["audio-image", "audio-text", "image-text"]
    pair = report["pairs"]["image-text"]
    assert pair["samples"] == n
    for direction in ("image_to_text", "text_to_image"):
        assert 0 <= pair[f"{direction}/recall@1"] <= pair[f"{direction}/recall@5"] <= 1
        assert 1 <= pair[f"{direction}/median_rank"] <= n
    assert "median rank" in out and "image -> text" in out
    assert not (folder / "predictions.csv").exists()  # embeddings, not predictions
    # zero-shot by the label's class names (known answers: tests/test_zero_shot.py): every sample once
    classes = json.loads((folder / "zero_shot.json").read_text())
    assert classes["classes"] == ["zero", "one", "two", "three"] and classes["prompts"][0] == "a zero report"
    assert sorted(classes["modalities"]) == ["audio", "image"]  # classified through the text encoder
    for r in classes["modalities"].values():
        assert r["samples"] == n == sum(c["samples"] for c in r["per_class"].values())
        assert sum(map(sum, r["confusion"])) == n and 0 <= r["accuracy"] <= 1
    assert "zero-shot classification by 'label'" in out
    assert "not in the text vocabulary" in out  # the quickstart's captions never name a class

    # two DDP processes (gloo), batches of 5: each embeds its share, rank 0 writes every id once, in order
    ddp = ["--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp"]
    command = ["embed", *args, "--ckpt_path", "last", "--output", str(tmp_path / "ddp"), *zero_shot]
    done = subprocess.run(
        [sys.executable, "-m", "mmfuse", *command, *ddp, "--data.init_args.batch_size=5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=os.environ.copy(),
    )
    assert done.returncode == 0, done.stderr[-4000:]
    both = np.load(tmp_path / "ddp" / "embeddings.npz")
    assert both["ids"].tolist() == test_ids
    for key in ("fused", "audio", "image", "text"):
        np.testing.assert_allclose(both[key], arrays[key], rtol=1e-4, atol=1e-5)
    ddp_classes = json.loads((tmp_path / "ddp" / "zero_shot.json").read_text())
    for m, r in classes["modalities"].items():  # each sample counted once under DDP too
        assert ddp_classes["modalities"][m]["per_class"] == r["per_class"]


def test_merge_keeps_each_id_once_in_the_given_order() -> None:
    # two processes' batches, as gathered: rank 1 repeats sample c (a padded shard), order scrambled
    rank0 = {"ids": ["c", "a"], "fused": np.array([[3.0], [1.0]]), "x": np.array([[30.0], [10.0]])}
    rank1 = {"ids": ["b", "c"], "fused": np.array([[2.0], [9.0]]), "x": np.array([[20.0], [90.0]])}
    merged = _merge([rank0, rank1], {"a": 0, "b": 1, "c": 2})
    assert merged["ids"].tolist() == ["a", "b", "c"]
    assert merged["fused"][:, 0].tolist() == [1.0, 2.0, 3.0]  # c's first row, not the repeat
    assert merged["x"][:, 0].tolist() == [10.0, 20.0, 30.0]


def test_retrieval_uses_only_samples_with_both_modalities() -> None:
    eye = np.eye(4, dtype=np.float32)
    arrays = {
        "image": eye,
        "text": eye[[0, 1, 3, 2]],  # rows 2 and 3 swapped: their matches rank second
        "image_present": np.array([True, True, True, True]),
        "text_present": np.array([True, True, True, False]),  # row 3 has no text: left out
    }
    [(pair, values)] = retrieval(arrays, ["text", "image"]).items()
    assert pair == "image-text" and values["samples"] == 3
    # among rows 0..2: image_2 = e_2 vs text rows e_0, e_1, e_3: all score 0, a tie that counts as a hit
    assert values["image_to_text/recall@1"] == 1.0
    arrays["text_present"][:] = True
    values = retrieval(arrays, ["image", "text"])["image-text"]
    assert values["image_to_text/recall@1"] == pytest.approx(0.5)
    assert values["image_to_text/median_rank"] == pytest.approx(1.5)  # ranks 1, 1, 2, 2
