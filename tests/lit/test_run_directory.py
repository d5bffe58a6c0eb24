"""`--ckpt_path last` finds this experiment's run; evaluation folders sit under their run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
import yaml

from mmfuse.lit.run_directory import evaluation_directory, find_last_checkpoint, run_of_checkpoint


def _run(root: Path, name: str, fusion: str, epoch: int = 0) -> Path:
    run = root / "mmfuse" / name
    (run / "checkpoints").mkdir(parents=True)
    config = {
        "model": {
            "encoders": {"image": {"class_path": "mmfuse.models.encoders.ImageCNN", "init_args": {}}},
            "fusion": {"class_path": f"mmfuse.models.fusion.{fusion}", "init_args": {}},
        }
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    last = run / "checkpoints" / "last.ckpt"
    torch.save({"epoch": epoch, "global_step": 10 * epoch}, last)
    return last


def _config(fusion: str) -> dict[str, object]:
    return {
        "model": {
            "encoders": {"image": {"class_path": "mmfuse.models.encoders.ImageCNN"}},
            "fusion": {"class_path": f"mmfuse.models.fusion.{fusion}"},
        }
    }


def test_last_is_the_run_with_this_configs_encoders_and_fuser(tmp_path: Path) -> None:
    cross = _run(tmp_path, "a1", "CrossModalAttentionFusion", epoch=3)
    concat = _run(tmp_path, "b2", "ConcatFusion", epoch=5)
    time.sleep(0.01)
    concat.touch()  # the concat run is the newest: `last` must still pick the cross-attention run
    assert find_last_checkpoint(tmp_path, _config("CrossModalAttentionFusion")) == cross
    assert find_last_checkpoint(tmp_path, _config("ConcatFusion")) == concat


def test_no_matching_run_lists_what_is_there(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="there are no runs there"):
        find_last_checkpoint(tmp_path, _config("ConcatFusion"))
    other = _run(tmp_path, "a1", "CrossModalAttentionFusion", epoch=3)
    with pytest.raises(FileNotFoundError, match="none of the 1 runs") as info:
        find_last_checkpoint(tmp_path, _config("LateFusion"))
    assert str(other) in str(info.value) and "epoch 3, step 30" in str(info.value)


def test_two_runs_of_the_experiment_are_an_error_listing_both(tmp_path: Path) -> None:
    first = _run(tmp_path, "a1", "ConcatFusion", epoch=1)
    second = _run(tmp_path, "b2", "ConcatFusion", epoch=2)
    with pytest.raises(ValueError, match=r"2 runs .* pass the one to resume as --ckpt_path PATH") as info:
        find_last_checkpoint(tmp_path, _config("ConcatFusion"))
    assert str(first) in str(info.value) and str(second) in str(info.value)


def test_evaluation_goes_under_the_checkpoints_run(tmp_path: Path) -> None:
    last = _run(tmp_path, "a1", "ConcatFusion")
    assert run_of_checkpoint(last) == last.parent.parent
    folder = evaluation_directory(str(last), tmp_path / "elsewhere", "test")
    assert folder.parent == last.parent.parent / "eval" and folder.name.endswith("-test")
    assert not folder.exists()  # named, not created
    folder.mkdir(parents=True)
    again = evaluation_directory(str(last), tmp_path, "test")
    assert again != folder  # two evaluations within one second get two folders
    # a checkpoint outside any run (a downloaded file): under default_root_dir
    loose = tmp_path / "loose.ckpt"
    loose.write_bytes(b"x")
    assert run_of_checkpoint(loose) is None
    assert evaluation_directory(str(loose), tmp_path / "root", "predict").parent == tmp_path / "root" / "eval"
