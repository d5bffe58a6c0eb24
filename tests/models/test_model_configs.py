"""The shipped fuser and encoder configs work on top of the quickstart: every fuser builds for its
modalities and trains a step; every encoder config keeps the quickstart's modalities (a later config
replaces the `model.encoders` dict whole). The CLI parses them all in tests/test_cli.py."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
import yaml

from mmfuse.models.fusion.base import Fuser
from mmfuse.types import EncoderOutput

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs" / "fusion").glob("*.yaml"))
ENCODER_CONFIGS = sorted((ROOT / "configs" / "encoders").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_fusion_config_builds_and_trains_a_step(path: Path) -> None:
    spec = yaml.safe_load(path.read_text())["model"]["fusion"]
    module, _, name = spec["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    torch.manual_seed(0)
    fuser = cls(modalities=["image", "text", "audio"], **spec.get("init_args", {}))
    assert isinstance(fuser, Fuser)
    B, D = 3, fuser.d_model
    encoded = {
        m: EncoderOutput(torch.randn(B, t, D), torch.ones(B, t, dtype=torch.bool))
        for m, t in {"audio": 6, "image": 4, "text": 5}.items()
    }
    present = {m: torch.tensor([True, True, m == "image"]) for m in encoded}
    optimizer = torch.optim.SGD(fuser.parameters(), lr=0.1) if list(fuser.parameters()) else None
    out = fuser.train()(encoded, present)
    assert out.pooled.shape == (B, fuser.out_dim) and torch.isfinite(out.pooled).all()
    if optimizer is not None:
        out.pooled.square().mean().backward()
        assert all(torch.isfinite(p.grad).all() for p in fuser.parameters() if p.grad is not None)
        optimizer.step()


@pytest.mark.parametrize("path", ENCODER_CONFIGS, ids=lambda p: p.stem)
def test_encoder_config_swaps_one_encoder_and_keeps_the_quickstart_modalities(path: Path) -> None:
    quickstart = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    data = quickstart["data"]["init_args"]["modalities"]
    before = quickstart["model"]["encoders"]
    after = yaml.safe_load(path.read_text())["model"]["encoders"]
    assert sorted(after) == sorted(data)
    assert sum(after[m] != before[m] for m in data) == 1  # one encoder swapped, the others as they were
