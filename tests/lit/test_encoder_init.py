"""InitEncoders: encoder weights copied from a checkpoint, optionally frozen; mismatches refused."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from mmfuse.lit.checkpoint_source import CheckpointError
from mmfuse.lit.encoder_init import InitEncoders


def _encoders(seed: int) -> nn.ModuleDict:
    torch.manual_seed(seed)
    return nn.ModuleDict(
        {"image": nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)), "text": nn.Embedding(10, 4)}
    )


class _Data:
    def __init__(self, vocab: list[str]) -> None:
        self.modalities = {"text": SimpleNamespace(state_dict=lambda: {"vocab": vocab})}


def _save(path: Path, encoders: nn.ModuleDict, vocab: list[str]) -> str:
    state = {f"model.encoders.{k}": v for k, v in encoders.state_dict().items()}
    state["model.heads.label.weight"] = torch.zeros(2, 4)  # never copied
    torch.save({"state_dict": state, "_Data": {"modalities": {"text": {"vocab": vocab}}}}, path)
    return str(path)


def _setup(callback: InitEncoders, encoders: nn.ModuleDict, data: Any) -> None:
    module = SimpleNamespace(model=SimpleNamespace(encoders=encoders))
    callback.setup(SimpleNamespace(datamodule=data), module, "fit")  # type: ignore[arg-type]


VOCAB = ["<pad>", "<unk>", "red"]


def test_copies_the_encoders_and_freezes_them(tmp_path: Path) -> None:
    source = _encoders(0)
    ckpt = _save(tmp_path / "a.ckpt", source, VOCAB)
    target = _encoders(1)
    assert not torch.equal(target["image"][0].weight, source["image"][0].weight)
    callback = InitEncoders(ckpt, modalities=["image"], freeze=True)
    _setup(callback, target, _Data(VOCAB))
    assert torch.equal(target["image"][0].weight, source["image"][0].weight)
    assert not torch.equal(target["text"].weight, source["text"].weight)  # not asked for
    assert not any(p.requires_grad for p in target["image"].parameters())
    assert all(p.requires_grad for p in target["text"].parameters())
    target.train()
    callback.on_train_batch_start(None, None)  # type: ignore[arg-type]
    assert not target["image"].training and target["text"].training

    every = _encoders(2)
    _setup(InitEncoders(ckpt), every, _Data(VOCAB))  # default: every encoder the checkpoint has
    assert torch.equal(every["text"].weight, source["text"].weight)
    assert all(p.requires_grad for p in every.parameters())


def test_refuses_what_does_not_fit(tmp_path: Path) -> None:
    ckpt = _save(tmp_path / "a.ckpt", _encoders(0), VOCAB)
    with pytest.raises(CheckpointError, match="other text vocabulary"):
        _setup(InitEncoders(ckpt), _encoders(1), _Data([*VOCAB, "blue"]))
    with pytest.raises(CheckpointError, match=r"cannot copy \['audio'\]"):
        _setup(InitEncoders(ckpt, modalities=["audio"]), _encoders(1), _Data(VOCAB))
    wider = _encoders(1)
    wider["image"] = nn.Sequential(nn.Linear(4, 8))
    with pytest.raises(CheckpointError, match=r"'image' encoder of .* does not fit"):
        _setup(InitEncoders(ckpt, modalities=["image"]), wider, _Data(VOCAB))
