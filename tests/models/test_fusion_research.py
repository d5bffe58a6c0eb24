"""What is specific to the research fusers (the shared contract is tests/models/test_contracts.py):
early fusion lets modalities read each other, the MBT bottleneck isolates them, the Perceiver's
latents attend over valid keys only, LMF equals its tensor-fusion form, FiLM modulates by presence."""

from __future__ import annotations

import pytest
import torch

from mmfuse.models.fusion import BottleneckFusion, EarlyFusion, FiLMFusion, LowRankFusion, PerceiverFusion
from mmfuse.types import EncoderOutput
from tests.models.contracts import MODALITIES, D, all_present, encoded_example


def _with_new_image(encoded: dict[str, EncoderOutput]) -> dict[str, EncoderOutput]:
    image = encoded["image"]
    return {**encoded, "image": EncoderOutput(image.tokens + torch.randn_like(image.tokens), image.mask)}


def test_early_fusion_text_tokens_read_the_image() -> None:
    torch.manual_seed(0)
    fuser = EarlyFusion(MODALITIES, d_model=D, num_heads=2, num_layers=1, dropout=0.0).eval()
    encoded, present = encoded_example(2), all_present(2)
    before, after = fuser(encoded, present), fuser(_with_new_image(encoded), present)
    assert not torch.allclose(before.per_modality["text"], after.per_modality["text"])
    # rows of text->others cover the image and audio keys; with [CLS] and text itself they sum to 1
    weights = before.attention["text->others"]  # (B, H, 3, 5 + 4)
    assert weights.shape == (2, 2, 3, 9) and (weights.sum(-1) < 1).all() and (weights.sum(-1) > 0).all()


@pytest.mark.parametrize(("fusion_layer", "text_sees_image"), [(0, True), (1, False)])
def test_bottleneck_is_the_only_path_between_modalities(fusion_layer: int, text_sees_image: bool) -> None:
    """Two layers: fusing from layer 0, text reads in layer 1 what the image wrote in layer 0; fusing
    only in layer 1, text reads the bottleneck before anyone wrote it, so only ``pooled`` sees both."""
    torch.manual_seed(0)
    fuser = BottleneckFusion(
        MODALITIES, D, 2, num_layers=2, fusion_layer=fusion_layer, num_heads=2, dropout=0
    )
    encoded, present = encoded_example(2), all_present(2)
    before, after = fuser.eval()(encoded, present), fuser(_with_new_image(encoded), present)
    same_text = torch.allclose(before.per_modality["text"], after.per_modality["text"], atol=1e-6)
    assert same_text is not text_sees_image
    assert not torch.allclose(before.pooled, after.pooled)
    assert sorted(before.attention) == (
        ["audio->others", "image->others", "text->others"] if fusion_layer == 0 else []
    )


def test_bottleneck_absent_modality_writes_nothing() -> None:
    """A sample without the image fuses exactly as a fuser that never had an image."""
    torch.manual_seed(0)
    three = BottleneckFusion(MODALITIES, D, 2, num_layers=2, num_heads=2, dropout=0).eval()
    two = BottleneckFusion(["audio", "text"], D, 2, num_layers=2, num_heads=2, dropout=0).eval()
    two.load_state_dict({k: v for k, v in three.state_dict().items() if not k.startswith("layers.image.")})
    encoded, present = encoded_example(3), all_present(3)
    present["image"] = torch.tensor([False, True, False])
    got = three(encoded, present)
    alone = two({m: encoded[m] for m in ("audio", "text")}, {m: present[m] for m in ("audio", "text")})
    rows = ~present["image"]
    assert torch.allclose(got.pooled[rows], alone.pooled[rows], atol=1e-5)
    assert not torch.allclose(got.pooled[~rows], alone.pooled[~rows], atol=1e-5)


def test_perceiver_latents_attend_over_valid_keys_only() -> None:
    torch.manual_seed(0)
    fuser = PerceiverFusion(MODALITIES, D, num_latents=3, num_heads=2, dropout=0).eval()
    encoded, present = encoded_example(3), all_present(3)
    present["audio"] = torch.tensor([True, False, False])
    present["image"] = torch.tensor([True, True, False])
    present["text"] = torch.tensor([True, True, False])  # row 2: nothing at all
    weights = fuser(encoded, present).attention["latents->tokens"]  # (B, H, N, 5 + 4 + 3)
    assert weights.shape == (3, 2, 3, 12)
    keys = torch.cat([encoded[m].mask & present[m][:, None] for m in ("audio", "image", "text")], dim=1)
    assert torch.all(weights.masked_select(~keys[:, None, None, :]) == 0)
    sums = weights.sum(-1)
    assert torch.allclose(sums[:2], torch.ones_like(sums[:2]), atol=1e-5) and torch.all(sums[2] == 0)


def test_low_rank_fusion_equals_tensor_fusion_with_the_low_rank_weight() -> None:
    """LMF's output is TFN's: the outer product of ``[h_m, 1]`` through the weight the factors build."""
    torch.manual_seed(0)
    fuser = LowRankFusion(["image", "text"], d_model=3, rank=2, dropout=0.0).eval()
    encoded = {
        m: EncoderOutput(torch.randn(4, 2, 3), torch.ones(4, 2, dtype=torch.bool)) for m in ("image", "text")
    }
    out = fuser(encoded, {m: torch.ones(4, dtype=torch.bool) for m in encoded})
    a, b = fuser.factors["image"], fuser.factors["text"]  # (r, 4, 3) each
    weight = torch.einsum("r,rio,rjo->ijo", fuser.rank_weights, a, b)  # (4, 4, 3): TFN's full tensor
    z = {m: torch.cat([out.per_modality[m], torch.ones(4, 1)], dim=-1) for m in encoded}  # (B, 4)
    outer = torch.einsum("bi,bj->bij", z["image"], z["text"])  # (B, 4, 4)
    expected = fuser.norm(torch.einsum("bij,ijo->bo", outer, weight) + fuser.bias)
    assert torch.allclose(out.pooled, expected, atol=1e-5)


def test_film_modulates_only_where_the_conditioning_modality_is_present() -> None:
    torch.manual_seed(0)
    fuser = FiLMFusion(MODALITIES, d_model=D, conditioning="text", dropout=0.0).eval()
    encoded, present = encoded_example(2), all_present(2)
    present["text"] = torch.tensor([True, False])
    before = fuser(encoded, present)
    with torch.no_grad():
        for generator in fuser.generator.values():
            generator.bias.add_(1.0)  # other gammas and betas
    after = fuser(encoded, present)
    for m in ("audio", "image"):
        assert not torch.allclose(after.per_modality[m][0], before.per_modality[m][0])  # modulated
        assert torch.equal(after.per_modality[m][1], before.per_modality[m][1])  # no text: untouched
    assert fuser.targets == ["audio", "image"]
    with pytest.raises(ValueError, match="conditioning='graph'"):
        FiLMFusion(MODALITIES, conditioning="graph")
    with pytest.raises(ValueError, match="another modality"):
        FiLMFusion(["text"], conditioning="text")
