"""GatedFusion beyond the shared contract: an absent modality gets weight 0, as if the fuser never had it."""

from __future__ import annotations

import torch

from mmfuse.models.fusion.gated import GatedFusion
from mmfuse.types import EncoderOutput

D = 8
LENGTHS = {"audio": 5, "image": 4, "text": 1}


def _encoded(batch: int, seed: int = 0) -> dict[str, EncoderOutput]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for m, t in LENGTHS.items():
        mask = torch.rand(batch, t, generator=g) > 0.3
        mask[:, 0] = True  # at least one real token
        out[m] = EncoderOutput(torch.randn(batch, t, D, generator=g), mask)
    return out


def _fuser() -> GatedFusion:
    torch.manual_seed(0)
    return GatedFusion(["text", "image", "audio"], d_model=D, hidden=16, dropout=0.0).eval()


def test_absent_modality_is_as_if_the_fuser_never_had_it() -> None:
    fuser, encoded = _fuser(), _encoded(4)
    present = {m: torch.ones(4, dtype=torch.bool) for m in LENGTHS}
    present["image"] = torch.tensor([True, False, True, False])
    before = fuser(encoded, present).pooled
    garbage = dict(encoded)
    tokens = encoded["image"].tokens.clone()
    tokens[~present["image"]] = float("nan")  # even NaN in an absent modality changes no output
    garbage["image"] = EncoderOutput(tokens, encoded["image"].mask)
    after = fuser(garbage, present).pooled
    assert torch.equal(before, after)
    # and the fused value equals that of a fuser-free sum over the present modalities' gated features
    alone = {m: encoded[m] for m in ("audio", "text")}
    two = GatedFusion(["audio", "text"], d_model=D, hidden=16, dropout=0.0).eval()
    two.load_state_dict(fuser.state_dict())
    expected = two(alone, {m: present[m] for m in alone}).pooled
    assert torch.allclose(after[~present["image"]], expected[~present["image"]], atol=1e-6)
