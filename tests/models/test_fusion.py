"""What is specific to each built-in fuser (the shared contract is tests/models/test_contracts.py):
single-modality use, cross-attention weights, late fusion's averaging, and logits-only combine."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from mmfuse.models.fusion import ConcatFusion, CrossModalAttentionFusion, Fuser, LateFusion
from tests.models.contracts import MODALITIES, D, all_present, encoded_example

MODS = MODALITIES


def _concat(mods: list[str]) -> Fuser:
    return ConcatFusion(mods, d_model=D, hidden=16, dropout=0.0)


def _cross(mods: list[str]) -> Fuser:
    return CrossModalAttentionFusion(mods, d_model=D, num_heads=2, num_layers=2, ff_mult=2, dropout=0.0)


@pytest.mark.parametrize("make", [_concat, _cross], ids=["concat", "cross"])
def test_single_modality_gradient_reaches_every_parameter(make: Callable[[list[str]], Fuser]) -> None:
    torch.manual_seed(0)
    mods = ["text"]
    fuser = make(mods).train()
    encoded = {m: o for m, o in encoded_example(3).items() if m in mods}
    out = fuser(encoded, {m: torch.ones(3, dtype=torch.bool) for m in mods})
    (out.pooled * torch.randn_like(out.pooled)).sum().backward()
    for name, p in fuser.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


def test_cross_attention_single_modality_has_no_attention_maps() -> None:
    fuser = _cross(["text"])
    out = fuser({"text": encoded_example(2)["text"]}, {"text": torch.ones(2, dtype=torch.bool)})
    assert out.attention == {} and out.pooled.shape == (2, D)


def test_cross_attention_weights_sum_to_one_over_valid_keys_only() -> None:
    fuser = _cross(MODS).eval()
    encoded, present = encoded_example(3), all_present(3)
    present["image"] = torch.tensor([True, False, False])
    present["text"] = torch.tensor([True, True, False])  # row 2: audio has no other modality
    weights = fuser(encoded, present).attention["audio->others"]  # (B, H, 5, 4 + 3)
    assert weights.shape == (3, 2, 5, 7)
    key_mask = torch.cat(
        [encoded["image"].mask & present["image"][:, None], encoded["text"].mask & present["text"][:, None]],
        dim=1,
    )  # (B, 7)
    assert torch.all(weights.masked_select(~key_mask[:, None, None, :]) == 0)
    sums = weights.sum(-1)  # (B, H, 5)
    assert torch.allclose(sums[:2], torch.ones_like(sums[:2]), atol=1e-5)
    assert torch.all(weights[2] == 0)  # no valid key: no weight anywhere, and no NaN
    assert torch.all(weights[1, :, :, :4] == 0)  # absent image: zero even on its real tokens


def test_late_fusion_averages_present_modalities_only() -> None:
    fuser = LateFusion(MODS, d_model=D)
    assert fuser.decision_level and not ConcatFusion.decision_level
    assert list(fuser.parameters()) == []
    logits = {
        "audio": torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),
        "image": torch.tensor([[10.0, 20.0], [float("nan"), 0.0], [7.0, 8.0]]),
        "text": torch.tensor([[100.0, 200.0], [30.0, 40.0], [9.0, 10.0]]),
    }
    present = {
        "audio": torch.tensor([True, True, False]),
        "image": torch.tensor([True, False, False]),
        "text": torch.tensor([False, True, False]),
    }
    expected = torch.tensor([[5.5, 11.0], [16.5, 22.0], [0.0, 0.0]])
    assert torch.equal(fuser.combine(logits, present), expected)

    encoded = encoded_example(3)
    out = fuser(encoded, present)
    pm = out.per_modality
    assert torch.allclose(out.pooled[0], (pm["audio"][0] + pm["image"][0]) / 2)
    assert torch.allclose(out.pooled[1], (pm["audio"][1] + pm["text"][1]) / 2)
    assert torch.all(out.pooled[2] == 0)
    real = encoded["audio"].mask[0]
    assert torch.allclose(pm["audio"][0], encoded["audio"].tokens[0][real].mean(0))


def test_late_combine_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="logits"):
        LateFusion(MODS).combine({"text": torch.zeros(2, 3)}, all_present(2))


def test_feature_level_fuser_refuses_to_combine_logits() -> None:
    with pytest.raises(NotImplementedError, match="pooled"):
        _concat(MODS).combine({m: torch.zeros(2, 3) for m in MODS}, all_present(2))
