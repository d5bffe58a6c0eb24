"""Retrieval recall@k: hand-computed values, torchmetrics' per-query recall, the epoch metric."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.functional.retrieval import retrieval_recall as tm_recall

from mmfuse.models.retrieval import CrossModalRecall, retrieval_recall


def test_recall_hand_computed() -> None:
    a = torch.eye(3)
    b = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.5, 0.0], [0.0, 0.0, 1.0]])
    # a -> b: every a_i scores its b_i highest (a_1 = e_1: b_1 scores 0.447, the others 0).
    # b -> a: b_1 scores a_0 (0.894) above its match a_1 (0.447): a miss at k = 1, a hit at k = 2.
    out = retrieval_recall(a, b, ks=(1, 2), names=("image", "text"))
    assert out.keys() == {"image_to_text/recall@1", "image_to_text/recall@2", "text_to_image/recall@1",
                          "text_to_image/recall@2"}  # fmt: skip
    assert out["image_to_text/recall@1"].item() == 1.0
    assert out["text_to_image/recall@1"].item() == pytest.approx(2 / 3)
    assert out["text_to_image/recall@2"].item() == 1.0


def test_recall_matches_torchmetrics_per_query() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(20, 8, generator=g), torch.randn(20, 8, generator=g)
    b = b + a  # related, so the recall is neither 0 nor 1
    out = retrieval_recall(a, b, ks=(1, 5, 10, 50))
    sim = torch.nn.functional.normalize(a, dim=1) @ torch.nn.functional.normalize(b, dim=1).T
    target = torch.eye(20, dtype=torch.bool)
    for k in (1, 5, 10, 50):
        # exp(): torchmetrics counts a relevant item with a score <= 0 as never retrieved
        a2b = torch.stack([tm_recall(sim[i].exp(), target[i], top_k=k) for i in range(20)]).mean()
        b2a = torch.stack([tm_recall(sim[:, i].exp(), target[i], top_k=k) for i in range(20)]).mean()
        torch.testing.assert_close(out[f"a_to_b/recall@{k}"], a2b)
        torch.testing.assert_close(out[f"b_to_a/recall@{k}"], b2a)
    assert 0 < out["a_to_b/recall@1"].item() < 1


def test_metric_accumulates_valid_samples_over_batches() -> None:
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(10, 4, generator=g), torch.randn(10, 4, generator=g)
    valid = torch.ones(10, dtype=torch.bool)
    valid[[3, 8]] = False
    metric = CrossModalRecall(names=("audio", "text"), ks=(1, 3))
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert metric.compute()["audio_to_text/recall@1"].isnan()  # nothing seen yet
    metric.update(a[:6], b[:6], valid[:6])
    metric.update(a[6:], b[6:], valid[6:])
    expected = retrieval_recall(a[valid], b[valid], ks=(1, 3), names=("audio", "text"))
    got = metric.compute()
    assert got.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key])
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        retrieval_recall(a, b[:5])
