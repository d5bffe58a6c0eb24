"""Attention maps of every fuser that returns weights: one figure per (query, key modality) pair and
sample, showing exactly the real tokens' weights, with the right labels on the right axes."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from mmfuse.lit.wandb.attention_maps import AttentionPanel, attention_panels
from mmfuse.lit.wandb.val_samples import FixedSamples
from mmfuse.models.fusion import BottleneckFusion, CrossModalAttentionFusion, EarlyFusion, PerceiverFusion
from mmfuse.models.fusion.base import Fuser
from mmfuse.types import Batch
from tests.models.contracts import LENGTHS, MODALITIES, D, encoded_example

B = 2
LATENTS = 3
# one line per fuser that returns attention: how to build it, and whether its queries are latents
FUSERS = {
    "cross": (lambda m: CrossModalAttentionFusion(m, D, num_heads=2, num_layers=1, dropout=0), False),
    "early": (lambda m: EarlyFusion(m, D, num_heads=2, num_layers=2, dropout=0), False),
    "bottleneck": (lambda m: BottleneckFusion(m, D, 2, num_layers=2, num_heads=2, dropout=0), False),
    "perceiver": (lambda m: PerceiverFusion(m, D, num_latents=LATENTS, num_heads=2, dropout=0), True),
}


def _run(fuser: Fuser) -> tuple[dict[str, Tensor], dict[str, Tensor], FixedSamples]:
    """Fuse a batch whose second sample has no audio; the fuser's weights and effective masks."""
    torch.manual_seed(0)
    encoded = encoded_example(B)
    present = {m: torch.ones(B, dtype=torch.bool) for m in LENGTHS}
    present["audio"][1] = False
    with torch.no_grad():
        out = fuser.eval()(encoded, present)
    masks = {m: e.mask & present[m][:, None] for m, e in encoded.items()}
    words = [[f"w{b}{i}" for i in range(int(masks["text"][b].sum()))] for b in range(B)]
    samples = FixedSamples(Batch({}, {}, {}, ids=["s0", "s1"]), sorted(LENGTHS), [{}, {}], {"text": words})
    return out.attention, masks, samples


def _columns(query: str, key: str) -> slice:
    """Where ``key``'s tokens lie in the last axis of ``query``'s weights (sorted order, no query)."""
    before = [m for m in sorted(LENGTHS) if m != query and m < key]
    start = sum(LENGTHS[m] for m in before)
    return slice(start, start + LENGTHS[key])


def _expected_labels(masks: dict[str, Tensor], samples: FixedSamples, m: str, b: int) -> list[str]:
    if m == "text":
        return samples.tokens["text"][b]
    return [str(i) for i in masks[m][b].nonzero().flatten().tolist()]


@pytest.mark.parametrize("name", list(FUSERS))
def test_every_fuser_with_attention_gets_labelled_maps_of_its_real_tokens(name: str) -> None:
    make, latents = FUSERS[name]
    attention, masks, samples = _run(make(MODALITIES))
    assert attention  # every fuser here returns weights: no map would be a silent failure
    panels = attention_panels(attention, masks, samples, count=B, describe=lambda b: f"s{b}")
    queries = ["latents"] if latents else sorted(LENGTHS)
    pairs = {(q, k) for q in queries for k in sorted(LENGTHS) if k != q}
    assert {p.key for p in panels} == {f"attention/{q}_to_{k}" for q, k in pairs}
    # both samples for each pair, except sample 1 wherever audio (absent there) is on either axis
    assert len(panels) == sum(1 if "audio" in (q, k) else 2 for q, k in pairs)
    by_key: dict[str, list[AttentionPanel]] = {}
    for panel in panels:
        by_key.setdefault(panel.key, []).append(panel)
    for q, k in pairs:
        drawn_samples = [0] if "audio" in (q, k) else [0, 1]
        for b, panel in zip(drawn_samples, by_key[f"attention/{q}_to_{k}"], strict=True):
            assert panel.caption.startswith(f"s{b}: ")
            ax = panel.figure.axes[0]
            weights = attention["latents->tokens" if latents else f"{q}->others"].mean(dim=1)[b]
            if latents:
                start = sum(LENGTHS[m] for m in sorted(LENGTHS) if m < k)
                part, rows = weights[:, start : start + LENGTHS[k]], torch.ones(LATENTS, dtype=torch.bool)
                row_labels, row_title = [str(i) for i in range(LATENTS)], "latents (queries)"
            else:
                part, rows = weights[:, _columns(q, k)], masks[q][b]
                row_labels = _expected_labels(masks, samples, q, b)
                row_title = f"{q} {'tokens' if q == 'text' else 'token positions'} (queries)"
            expected = part[rows][:, masks[k][b]]  # real query tokens x real key tokens
            drawn = torch.as_tensor(ax.images[0].get_array())
            assert drawn.shape == expected.shape and torch.allclose(drawn.float(), expected, atol=1e-6)
            assert [t.get_text() for t in ax.get_yticklabels()] == row_labels
            assert [t.get_text() for t in ax.get_xticklabels()] == _expected_labels(masks, samples, k, b)
            assert ax.get_ylabel() == row_title
            assert ax.get_xlabel() == f"{k} {'tokens' if k == 'text' else 'token positions'} (keys)"


def test_unknown_layouts_are_left_out() -> None:
    attention, masks, samples = _run(FUSERS["cross"][0](MODALITIES))
    odd = {
        "image->text": attention["image->others"],  # neither "->others" nor "->tokens"
        "latents->tokens": torch.rand(B, 2, LATENTS, 5),  # 5 columns: not the modalities' 12 tokens
    }
    assert attention_panels(odd, masks, samples, count=B, describe=str) == []
