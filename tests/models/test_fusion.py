"""Fusers: shapes, absence invariance, presence patterns, late combine, attention weights, errors."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from mmfuse.models.fusion import ConcatFusion, CrossModalAttentionFusion, Fuser, LateFusion
from mmfuse.types import EncoderOutput

D = 8
MODS = ["text", "audio", "image"]  # deliberately unsorted
LENGTHS = {"audio": 5, "image": 4, "text": 3}


def _concat(mods: list[str]) -> Fuser:
    return ConcatFusion(mods, d_model=D, hidden=16, dropout=0.0)


def _late(mods: list[str]) -> Fuser:
    return LateFusion(mods, d_model=D)


def _cross(mods: list[str]) -> Fuser:
    return CrossModalAttentionFusion(mods, d_model=D, num_heads=2, num_layers=2, ff_mult=2, dropout=0.0)


FUSERS: list[Callable[[list[str]], Fuser]] = [_concat, _late, _cross]
IDS = ["concat", "late", "cross"]


def _encoded(batch: int, seed: int = 0) -> dict[str, EncoderOutput]:
    """Random tokens; every row keeps its first token real, the rest random."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for m, t in LENGTHS.items():
        mask = torch.rand(batch, t, generator=g) > 0.3
        mask[:, 0] = True
        out[m] = EncoderOutput(torch.randn(batch, t, D, generator=g), mask)
    return out


def _present(batch: int, value: bool = True) -> dict[str, Tensor]:
    return {m: torch.full((batch,), value) for m in LENGTHS}


def _assert_same(a: object, b: object) -> None:
    assert torch.allclose(a.pooled, b.pooled, atol=1e-5)  # type: ignore[attr-defined]
    for m in LENGTHS:
        assert torch.allclose(a.per_modality[m], b.per_modality[m], atol=1e-5)  # type: ignore[attr-defined]
    for k, w in a.attention.items():  # type: ignore[attr-defined]
        assert torch.allclose(w, b.attention[k], atol=1e-6)  # type: ignore[attr-defined]


@pytest.mark.parametrize("make", FUSERS, ids=IDS)
def test_shapes_and_sorted_modalities(make: Callable[[list[str]], Fuser]) -> None:
    fuser = make(MODS).eval()
    assert fuser.modalities == ["audio", "image", "text"] and fuser.out_dim == D
    out = fuser(_encoded(3), _present(3))
    assert out.pooled.shape == (3, fuser.out_dim)
    assert sorted(out.per_modality) == fuser.modalities
    assert all(v.shape == (3, D) for v in out.per_modality.values())
    if isinstance(fuser, CrossModalAttentionFusion):
        assert out.attention["audio->others"].shape == (3, 2, 5, 4 + 3)
        assert out.attention["image->others"].shape == (3, 2, 4, 5 + 3)
        assert out.attention["text->others"].shape == (3, 2, 3, 5 + 4)
    else:
        assert out.attention == {}
    # the order the dict was built in does not matter
    reordered = dict(reversed(list(_encoded(3).items())))
    _assert_same(fuser(reordered, _present(3)), out)


@pytest.mark.parametrize("make", FUSERS, ids=IDS)
def test_absent_modality_cannot_influence_anything(make: Callable[[list[str]], Fuser]) -> None:
    torch.manual_seed(0)
    fuser = make(MODS).eval()
    encoded, present = _encoded(4), _present(4)
    present["audio"] = torch.tensor([False, True, False, True])
    present["text"] = torch.tensor([True, True, False, True])  # row 2: only image present
    before = fuser(encoded, present)
    tokens = encoded["audio"].tokens.clone()
    tokens[[0, 2]] = 1e4 * torch.randn(2, 5, D)
    tokens[2, 1] = float("inf")
    mask = encoded["audio"].mask.clone()
    mask[[0, 2]] = ~mask[[0, 2]]
    encoded["audio"] = EncoderOutput(tokens, mask)
    # padded tokens of a present modality are garbage too
    text = encoded["text"].tokens.clone()
    text[~encoded["text"].mask] = float("nan")
    encoded["text"] = EncoderOutput(text, encoded["text"].mask)
    after = fuser(encoded, present)
    assert torch.isfinite(after.pooled).all()
    _assert_same(after, before)
    assert torch.all(after.per_modality["audio"][[0, 2]] == 0)


@pytest.mark.parametrize("make", FUSERS, ids=IDS)
def test_every_presence_pattern_is_finite(make: Callable[[list[str]], Fuser]) -> None:
    fuser = make(MODS).train()
    patterns = [p for p in itertools.product([False, True], repeat=3) if any(p)]  # 7 rows
    B = len(patterns)
    present = {m: torch.tensor([p[i] for p in patterns]) for i, m in enumerate(sorted(LENGTHS))}
    encoded = _encoded(B)
    encoded = {m: EncoderOutput(o.tokens.requires_grad_(), o.mask) for m, o in encoded.items()}
    out = fuser(encoded, present)
    assert torch.isfinite(out.pooled).all()
    for m, v in out.per_modality.items():
        assert torch.isfinite(v).all() and torch.all(v[~present[m]] == 0)
    out.pooled.square().sum().backward()
    assert all(torch.isfinite(o.tokens.grad).all() for o in encoded.values())  # type: ignore[arg-type]
    # a modality with no real token at all, though "present", is finite too
    encoded["text"] = EncoderOutput(encoded["text"].tokens, torch.zeros(B, 3, dtype=torch.bool))
    assert torch.isfinite(fuser(encoded, present).pooled).all()


@pytest.mark.parametrize("make", [_concat, _cross], ids=["concat", "cross"])
@pytest.mark.parametrize("mods", [MODS, ["text"]], ids=["three", "single"])
def test_gradient_reaches_every_parameter(make: Callable[[list[str]], Fuser], mods: list[str]) -> None:
    torch.manual_seed(0)
    fuser = make(mods).train()
    encoded = {m: o for m, o in _encoded(3).items() if m in mods}
    out = fuser(encoded, {m: torch.ones(3, dtype=torch.bool) for m in mods})
    (out.pooled * torch.randn_like(out.pooled)).sum().backward()
    for name, p in fuser.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


def test_cross_attention_single_modality_has_no_attention_maps() -> None:
    fuser = _cross(["text"])
    out = fuser({"text": _encoded(2)["text"]}, {"text": torch.ones(2, dtype=torch.bool)})
    assert out.attention == {} and out.pooled.shape == (2, D)


def test_cross_attention_weights_sum_to_one_over_valid_keys_only() -> None:
    fuser = _cross(MODS).eval()
    encoded, present = _encoded(3), _present(3)
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

    encoded = _encoded(3)
    out = fuser(encoded, present)
    pm = out.per_modality
    assert torch.allclose(out.pooled[0], (pm["audio"][0] + pm["image"][0]) / 2)
    assert torch.allclose(out.pooled[1], (pm["audio"][1] + pm["text"][1]) / 2)
    assert torch.all(out.pooled[2] == 0)
    real = encoded["audio"].mask[0]
    assert torch.allclose(pm["audio"][0], encoded["audio"].tokens[0][real].mean(0))


@pytest.mark.parametrize("make", FUSERS, ids=IDS)
def test_modality_mismatch_raises(make: Callable[[list[str]], Fuser]) -> None:
    fuser = make(MODS)
    encoded, present = _encoded(2), _present(2)
    with pytest.raises(ValueError, match="expected"):
        fuser({m: o for m, o in encoded.items() if m != "text"}, present)
    with pytest.raises(ValueError, match="present"):
        fuser(encoded, {**present, "graph": torch.ones(2, dtype=torch.bool)})
    wide = EncoderOutput(torch.randn(2, 3, D + 1), encoded["text"].mask)
    with pytest.raises(ValueError, match="width"):
        fuser({**encoded, "text": wide}, present)
    with pytest.raises(ValueError, match="duplicate"):
        make(["text", "text"])
    with pytest.raises(ValueError, match="at least one"):
        make([])


def test_late_combine_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="logits"):
        LateFusion(MODS).combine({"text": torch.zeros(2, 3)}, _present(2))


def test_feature_level_fuser_refuses_to_combine_logits() -> None:
    with pytest.raises(NotImplementedError, match="pooled"):
        _concat(MODS).combine({m: torch.zeros(2, 3) for m in MODS}, _present(2))
