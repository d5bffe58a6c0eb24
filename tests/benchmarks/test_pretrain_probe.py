"""benchmarks/pretrain_probe.py --quick: pre-training, embed --zero_shot, a probe from its encoder and a
from-scratch run, all through the real commands (the figures: the script's, in the README)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch


def _image_encoder(run: Path) -> dict[str, torch.Tensor]:
    [ckpt] = run.glob("**/checkpoints/best*.ckpt")
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    return {k.split("model.encoders.image.", 1)[1]: v for k, v in state.items() if "encoders.image." in k}


@pytest.mark.slow  # four mmfuse processes: a pre-training fit, an embed and two one-epoch fits
def test_quick_run_probes_the_pretrained_encoder(
    load_benchmark: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    bench = load_benchmark("pretrain_probe")
    runs = tmp_path / "runs"
    lines = bench.main(["--quick", "--labels-per-class", "1", "--seeds", "0", "--runs", str(runs)])
    assert lines[1].startswith("recall@1 image->text") and "zero-shot colour accuracy" in lines[3]
    [row] = [line for line in lines if line.startswith("| 1 (6 labels)")]
    assert len(row.split("|")) == 5  # K, probe, scratch
    [pre] = runs.glob("pretrain/**/checkpoints/last.ckpt")
    pretrained = {
        k.split("model.encoders.image.", 1)[1]: v
        for k, v in torch.load(pre, weights_only=True)["state_dict"].items()
        if "encoders.image." in k
    }
    probe, scratch = _image_encoder(runs / "k1" / "probe"), _image_encoder(runs / "k1" / "scratch")
    assert probe.keys() == pretrained.keys()
    for name, value in pretrained.items():  # frozen: the probe's encoder is the pre-trained one, exactly
        assert torch.equal(probe[name], value), name
    assert not all(torch.equal(scratch[n], v) for n, v in pretrained.items())
    assert (runs / "image_only_colour.yaml").exists() and (runs / "embed" / "zero_shot.json").exists()
