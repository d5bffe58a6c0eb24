"""Unimodal heads: each modality's own head and loss, counted only where the model saw the modality."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmfuse.data import TaskSpec
from mmfuse.lit.module import MultimodalModule
from mmfuse.models.encoders import ImageCNN, TextRNN
from mmfuse.models.fusion import CrossModalAttentionFusion, LateFusion
from mmfuse.types import Batch

TASKS = [TaskSpec(name="label", kind="multiclass", names=["a", "b", "c"])]


def _module(fusion: str = "cross", **kwargs: object) -> MultimodalModule:
    encoders = {
        "image": ImageCNN(d_model=8, channels=[4]),
        "text": TextRNN(vocab_size=16, d_model=8, embed_dim=8, hidden_size=8),
    }
    names = sorted(encoders)
    fuser = (
        CrossModalAttentionFusion(names, d_model=8, num_heads=2)
        if fusion == "cross"
        else LateFusion(names, 8)
    )
    return MultimodalModule(encoders, fuser, tasks=TASKS, **kwargs)  # type: ignore[arg-type]


def _batch(text_present: list[bool]) -> Batch:
    B = len(text_present)
    g = torch.Generator().manual_seed(0)
    return Batch(
        inputs={
            "image": {"pixel_values": torch.randn(B, 3, 8, 8, generator=g)},
            "text": {
                "input_ids": torch.randint(1, 16, (B, 5), generator=g),
                "attention_mask": torch.ones(B, 5).bool(),
            },
        },
        present={"image": torch.ones(B, dtype=torch.bool), "text": torch.tensor(text_present)},
        targets={"label": torch.tensor([0, 1, 2, -1][:B])},
        ids=[f"s{i}" for i in range(B)],
    )


def test_each_modality_is_scored_only_on_the_samples_that_have_it() -> None:
    module = _module(unimodal_loss=0.5)
    batch = _batch([True, False, True, True])
    out = module(batch)
    assert set(out.unimodal["label"]) == {"image", "text"}
    aux = module.aux_losses(out, batch.present, batch)
    target = batch.targets["label"]
    image = F.cross_entropy(out.unimodal["label"]["image"], target, ignore_index=-1)  # rows 0, 1, 2
    text_rows = torch.tensor([0, 2])  # row 1 has no text, row 3 no label
    text = F.cross_entropy(out.unimodal["label"]["text"][text_rows], target[text_rows])
    assert aux["unimodal"].item() == pytest.approx(0.5 * (image + text).item() / 2, rel=1e-5)


def test_the_unimodal_heads_train_but_never_predict() -> None:
    module = _module(unimodal_loss=1.0)
    batch = _batch([True, True, True, True])
    out = module(batch)
    module.total_loss(module.task_losses(out, batch), module.aux_losses(out, batch.present, batch)).backward()
    heads = list(module.model.unimodal_heads.parameters())
    assert heads and all(p.grad is not None and p.grad.abs().sum() > 0 for p in heads)
    module.eval()
    with torch.no_grad():  # the prediction is the fused head's, whatever the unimodal heads hold
        before = module(batch).logits["label"]
        for p in heads:
            p.add_(1.0)
        assert torch.equal(module(batch).logits["label"], before)


def test_off_by_default_and_a_late_fuser_reuses_its_own_heads() -> None:
    plain, batch = _module(), _batch([True] * 3)
    out = plain(batch)
    assert len(plain.model.unimodal_heads) == 0 and out.unimodal == {}
    assert plain.aux_losses(out, batch.present, batch) == {}
    late = _module("late", unimodal_loss=1.0)
    extra = sum(p.numel() for p in late.parameters()) - sum(p.numel() for p in _module("late").parameters())
    assert extra == 0  # the per-modality heads of late fusion are the unimodal heads
    out = late(batch)
    per_modality = {m: h(out.fused.per_modality[m]) for m, h in late.model.heads["label"].items()}
    for m, logits in out.unimodal["label"].items():
        assert torch.equal(logits, per_modality[m])
    with pytest.raises(ValueError, match="unimodal_loss"):
        _module(unimodal_loss=-1.0)
