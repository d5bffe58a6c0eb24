"""Retrieval recall@k: hand-computed values, torchmetrics' per-query recall, the epoch metric."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.functional.retrieval import retrieval_recall as tm_recall

from mmfuse.models.retrieval import CrossModalRecall, match_ranks, retrieval_recall, retrieval_report


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


def test_median_rank_hand_computed() -> None:
    # a -> b: a_0 and a_2 find their match first; a_1 = e_1 ties nothing above b_1 (0.447 > 0): rank 1.
    # b -> a: b_1 scores a_0 (0.894) above its match a_1: rank 2; the others rank 1.
    a = torch.eye(3)
    b = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.5, 0.0], [0.0, 0.0, 1.0]])
    a2b, b2a = match_ranks(a, b)
    assert a2b.tolist() == [1, 1, 1] and b2a.tolist() == [1, 2, 1]
    # shifted gallery: each a_i's match b_i = e_(i+1) scores 0, below b_(i-1) = e_i (1): rank 2 each way
    shifted = retrieval_report(torch.eye(3), torch.eye(3)[[1, 2, 0]], ks=(1, 2), names=("image", "text"))
    assert shifted["image_to_text/median_rank"] == 2.0 and shifted["text_to_image/median_rank"] == 2.0
    assert shifted["image_to_text/recall@1"] == 0.0 and shifted["image_to_text/recall@2"] == 1.0
    report = retrieval_report(a, b, ks=(1,), names=("image", "text"))
    assert report["image_to_text/median_rank"] == 1.0 and report["text_to_image/median_rank"] == 1.0
    assert report["text_to_image/recall@1"] == pytest.approx(2 / 3)
    # an even count: the mean of the middle two ranks
    assert retrieval_report(torch.eye(2), torch.eye(2)[[1, 0]], ks=(1,))["a_to_b/median_rank"] == 2.0
