"""ContrastiveLoss: a reference implementation, symmetry, temperature, missing samples, pairs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from mmfuse.models.losses import ContrastiveLoss


def reference_infonce(a: Tensor, b: Tensor, temperature: float) -> Tensor:
    """CLIP's loss written out sample by sample: -log softmax of the match, both directions."""
    a, b = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    n = a.shape[0]
    total = torch.zeros((), dtype=a.dtype)
    for i in range(n):
        a_to_b = torch.stack([a[i] @ b[j] / temperature for j in range(n)])
        b_to_a = torch.stack([b[i] @ a[j] / temperature for j in range(n)])
        total = total - a_to_b[i] + torch.logsumexp(a_to_b, 0) - b_to_a[i] + torch.logsumexp(b_to_a, 0)
    return total / (2 * n)


def _batch(B: int = 6, D: int = 8, seed: int = 0) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(B, D, generator=g, dtype=torch.float64) for m in ("audio", "image", "text")}


def _all_present(emb: dict[str, Tensor]) -> dict[str, Tensor]:
    return {m: torch.ones(len(e), dtype=torch.bool) for m, e in emb.items()}


def test_equals_reference_on_a_small_batch() -> None:
    emb = _batch()
    out = ContrastiveLoss(pairs=[("image", "text")], temperature=0.2)(emb, _all_present(emb))
    expected = reference_infonce(emb["image"], emb["text"], 0.2)
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(out.per_pair["image-text"], expected)


def test_all_pairs_by_default_and_the_mean_over_pairs() -> None:
    emb = _batch()
    out = ContrastiveLoss(temperature=0.5)(emb, _all_present(emb))
    assert list(out.per_pair) == ["audio-image", "audio-text", "image-text"]
    for key, value in out.per_pair.items():
        a, b = key.split("-")
        torch.testing.assert_close(value, reference_infonce(emb[a], emb[b], 0.5))
    torch.testing.assert_close(out.loss, torch.stack(list(out.per_pair.values())).mean())


def test_symmetric() -> None:
    emb = _batch()
    present = _all_present(emb)
    ab = ContrastiveLoss(pairs=[("image", "text")])(emb, present).loss
    ba = ContrastiveLoss(pairs=[("text", "image")])(emb, present).loss
    torch.testing.assert_close(ab, ba)


def test_pairs_config_is_respected() -> None:
    emb = {m: e.requires_grad_() for m, e in _batch().items()}
    out = ContrastiveLoss(pairs=[["image", "text"]])(emb, _all_present(emb))
    assert list(out.per_pair) == ["image-text"]
    out.loss.backward()
    assert emb["audio"].grad is None  # a modality in no pair is not touched
    assert emb["image"].grad is not None and emb["text"].grad is not None
    with pytest.raises(ValueError, match="'graph'"):
        ContrastiveLoss(pairs=[("image", "graph")])(emb, _all_present(emb))
    with pytest.raises(ValueError, match="two different"):
        ContrastiveLoss(pairs=[("image", "image")])


def test_temperature_is_learnt_and_clamped() -> None:
    emb = _batch()
    loss_fn = ContrastiveLoss(temperature=0.07)
    assert loss_fn.temperature == pytest.approx(0.07)
    assert [n for n, _ in loss_fn.named_parameters()] == ["logit_scale"]
    opt = torch.optim.SGD(loss_fn.parameters(), lr=0.1)
    loss_fn(emb, _all_present(emb)).loss.backward()
    assert loss_fn.logit_scale.grad is not None and loss_fn.logit_scale.grad.abs() > 0
    opt.step()
    assert loss_fn.temperature != pytest.approx(0.07)

    fixed = ContrastiveLoss(temperature=0.07, learnable_temperature=False)
    assert list(fixed.parameters()) == [] and "logit_scale" in fixed.state_dict()
    # 1 / 0.001 = 1000 is clamped to max_logit_scale: the temperature cannot go below 1 / 100
    assert ContrastiveLoss(temperature=0.001, max_logit_scale=100.0).temperature == pytest.approx(0.01)
    with pytest.raises(ValueError, match="positive"):
        ContrastiveLoss(temperature=0.0)


def test_missing_samples_are_excluded() -> None:
    emb = _batch(B=6)
    present = _all_present(emb)
    present["text"][[1, 4]] = False
    loss_fn = ContrastiveLoss(pairs=[("image", "text")], temperature=0.1)
    out = loss_fn(emb, present)
    keep = torch.tensor([0, 2, 3, 5])
    torch.testing.assert_close(out.loss, reference_infonce(emb["image"][keep], emb["text"][keep], 0.1))
    # whatever a missing sample's placeholder holds (on either side), the loss does not change
    changed = {m: e.clone() for m, e in emb.items()}
    changed["text"][1] = 100.0
    changed["image"][4] = -3.0
    torch.testing.assert_close(loss_fn(changed, present).loss, out.loss)
    changed["text"][4] = float("nan")
    assert torch.isfinite(loss_fn(changed, present).loss)


def test_pair_with_under_two_samples_is_zero_and_connected() -> None:
    emb = {m: e.float().requires_grad_() for m, e in _batch(B=4).items()}
    present = _all_present(emb)
    present["audio"][:] = False
    present["audio"][0] = True  # audio pairs have one valid sample: no negative, no loss
    loss_fn = ContrastiveLoss(temperature=0.3)
    out = loss_fn(emb, present)
    assert not out.per_pair["audio-image"].detach() and not out.per_pair["audio-text"].detach()
    torch.testing.assert_close(out.loss, out.per_pair["image-text"])

    present["image"][:] = False  # nothing to contrast at all
    out = loss_fn(emb, present)
    assert not out.loss.detach()
    out.loss.backward()  # still a graph: every parameter used (what DDP requires)
    assert loss_fn.logit_scale.grad is not None and float(loss_fn.logit_scale.grad) == 0.0
    assert all(e.grad is not None and not e.grad.any() for e in emb.values())


def test_half_precision_inputs_give_a_float32_loss() -> None:
    emb = {m: e.to(torch.bfloat16) for m, e in _batch().items()}
    out = ContrastiveLoss()(emb, _all_present(emb))
    assert out.loss.dtype == torch.float32
    expected = ContrastiveLoss()({m: e.float() for m, e in emb.items()}, _all_present(emb)).loss
    torch.testing.assert_close(out.loss, expected)


def test_perfect_alignment_gives_a_small_loss() -> None:
    emb = F.one_hot(torch.arange(5), 5).double()
    pair = {"a": emb, "b": emb}
    out = ContrastiveLoss(pairs=[("a", "b")], temperature=0.01)(pair, _all_present(pair))
    # logits: 100 on the diagonal, 0 elsewhere
    assert out.loss.item() == pytest.approx(math.log(1 + 4 * math.exp(-100)), abs=1e-12)
