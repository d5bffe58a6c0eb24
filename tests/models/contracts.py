"""The contracts every encoder and fuser keeps, as checks anyone can reuse.

A new encoder or fuser is covered by ONE line: an :class:`EncoderCase` in ``ENCODERS`` or a
:class:`FuserCase` in ``FUSERS`` of ``tests/models/test_contracts.py`` (or of your own test file:
parametrize over your cases and ``ENCODER_CHECKS`` / ``FUSER_CHECKS``, as that file does).

Encoder contract: ``EncoderOutput`` tokens ``(B, T, D)`` with ``D = encoder.d_model``, mask
``(B, T)`` bool with True = real token, masked tokens exactly zero, finite outputs; for sequence
inputs, padding a batch further (with garbage) changes no real token's output and a row alone,
unpadded, gives the same real tokens; an empty row is finite and has no real token; a gradient
reaches every parameter.

Fuser contract: ``FusionOutput`` pooled ``(B, out_dim)``, per_modality ``m -> (B, D)`` (zeros where
``m`` is absent), attention maps ``(B, H, T_q, T_k)`` with ``"m->others"`` keys laid out as
:class:`~mmfuse.models.fusion.CrossModalAttentionFusion` lays them out (the W&B attention maps
read that layout); modality order and padding change nothing; an absent modality's contents (even
inf/NaN) change nothing; every presence pattern is finite forwards and backwards; a gradient
reaches every parameter; mismatched inputs raise ``ValueError``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

from mmfuse.models.fusion.base import Fuser
from mmfuse.types import EncoderOutput, FusionOutput

#: token width the cases build their encoders and fusers with
D = 8

InputBuilder = Callable[[Sequence[int], int], dict[str, Tensor]]


# --- encoders ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncoderCase:
    """One encoder under the contract.

    Attributes:
        id: the test id.
        make: builds the encoder (tiny dims, output width :data:`D`).
        inputs: ``(lengths, L) -> forward kwargs`` for ``len(lengths)`` samples. For sequence
            inputs (``padded``), every tensor is ``(B, L, ...)``, row ``b`` real for its first
            ``lengths[b]`` steps, garbage after; the real steps must not depend on ``L``.
            Non-sequence inputs (images, feature vectors) ignore ``lengths`` and ``L``.
        padded: whether the inputs have a padding axis (dim 1) the padding checks can use.
        sized: whether ``inputs`` gives row ``b`` ``lengths[b]`` real steps (or nodes) even without
            a padding axis (graphs); ``None``: as ``padded``. Enables the empty-row check.
        requires: a module the encoder needs (an optional extra); the checks skip without it.
    """

    id: str
    make: Callable[[], nn.Module]
    inputs: InputBuilder
    padded: bool = True
    sized: bool | None = None
    requires: str = ""

    def build(self) -> nn.Module:
        """The encoder, seeded: every call gives the same weights."""
        if self.requires:
            pytest.importorskip(self.requires)
        torch.manual_seed(0)
        return self.make()

    @property
    def has_lengths(self) -> bool:
        return self.padded if self.sized is None else self.sized


def _row_mask(lengths: Sequence[int], L: int) -> Tensor:
    return torch.arange(L)[None, :] < torch.tensor(list(lengths))[:, None]  # (B, L)


def text_inputs(vocab: int, cap: int = 32) -> InputBuilder:
    """Right-padded token ids in ``[1, vocab)``, random (non-pad) garbage ids past each row's length."""

    def build(lengths: Sequence[int], L: int) -> dict[str, Tensor]:
        real = torch.randint(1, vocab, (len(lengths), cap), generator=torch.Generator().manual_seed(0))
        junk = torch.randint(1, vocab, (len(lengths), L), generator=torch.Generator().manual_seed(L))
        mask = _row_mask(lengths, L)
        return {"input_ids": torch.where(mask, real[:, :L], junk), "attention_mask": mask}

    return build


def log_mel_inputs(n_mels: int, cap: int = 32) -> InputBuilder:
    """Padded log-mel frames ``(B, F, M)``, large garbage past each row's length."""

    def build(lengths: Sequence[int], L: int) -> dict[str, Tensor]:
        real = torch.randn(len(lengths), cap, n_mels, generator=torch.Generator().manual_seed(0))
        junk = 1e3 * torch.randn(len(lengths), L, n_mels, generator=torch.Generator().manual_seed(L))
        mask = _row_mask(lengths, L)
        return {"input_features": torch.where(mask[..., None], real[:, :L], junk), "feature_mask": mask}

    return build


def image_inputs(channels: int, height: int, width: int) -> InputBuilder:
    """Random images ``(B, C, H, W)``; no padding axis."""

    def build(lengths: Sequence[int], L: int) -> dict[str, Tensor]:
        g = torch.Generator().manual_seed(0)
        return {"pixel_values": torch.randn(len(lengths), channels, height, width, generator=g)}

    return build


def graph_inputs(features: int) -> InputBuilder:
    """A PyG-style batch of random graphs, ``lengths[b]`` nodes each (0: a missing graph); ``L`` unused."""

    def build(lengths: Sequence[int], L: int) -> dict[str, Tensor]:
        g = torch.Generator().manual_seed(0)
        counts = torch.tensor(list(lengths))
        starts = torch.cumsum(counts, 0) - counts  # (B,) first node of each graph
        edges = [  # (2, 2n) random edges inside each non-empty graph
            int(s) + torch.randint(0, int(n), (2, 2 * int(n)), generator=g)
            for s, n in zip(starts, counts, strict=True)
            if n > 0
        ]
        edge_index = torch.cat(edges, dim=1) if edges else torch.zeros(2, 0, dtype=torch.long)
        return {
            "x": torch.randn(int(counts.sum()), features, generator=g),
            "edge_index": torch.cat([edge_index, edge_index.flip(0)], dim=1),  # undirected
            "batch": torch.repeat_interleave(torch.arange(len(lengths)), counts),
            "node_counts": counts,
        }

    return build


def vector_inputs(features: int) -> InputBuilder:
    """Random feature vectors ``(B, F)``; no padding axis."""

    def build(lengths: Sequence[int], L: int) -> dict[str, Tensor]:
        return {"features": torch.randn(len(lengths), features, generator=torch.Generator().manual_seed(0))}

    return build


def _encode(case: EncoderCase, lengths: Sequence[int], L: int, train: bool = False) -> EncoderOutput:
    encoder = case.build().train(train)
    return encoder(**case.inputs(lengths, L))


def encoder_shapes_and_mask(case: EncoderCase) -> None:
    """tokens ``(B, T, D)``, mask ``(B, T)`` bool, True = real, masked tokens zero, finite."""
    encoder = case.build().eval()
    lengths = [6, 3, 1]
    out = encoder(**case.inputs(lengths, 6))
    assert isinstance(out, EncoderOutput)
    B, T, width = out.tokens.shape
    assert (B, width) == (3, encoder.d_model) and out.mask.shape == (B, T) and out.mask.dtype == torch.bool
    assert torch.isfinite(out.tokens).all()
    assert torch.all(out.tokens[~out.mask] == 0), "masked tokens must be exactly zero"
    real = out.mask.sum(dim=1)  # (B,)
    assert torch.all(real > 0), "every row with real inputs has a real token"
    if case.has_lengths:  # fewer real steps: no more real tokens, and some padding somewhere
        assert torch.all(real[:-1] >= real[1:]) and real[-1] < T


def encoder_padding_invariance(case: EncoderCase) -> None:
    """More padding (holding garbage) changes no real token; a row alone, unpadded, agrees."""
    if not case.padded:
        pytest.skip("no padding axis")
    lengths = [6, 3]
    short = _encode(case, lengths, 6)
    long = _encode(case, lengths, 10)
    T = short.tokens.shape[1]
    assert torch.equal(long.mask[:, :T], short.mask) and not long.mask[:, T:].any()
    assert torch.allclose(long.tokens[:, :T][short.mask], short.tokens[short.mask], atol=1e-5)
    encoder = case.build().eval()
    alone = encoder(**{k: v[1:, : lengths[1]] for k, v in case.inputs(lengths, 6).items()})
    t = alone.tokens.shape[1]
    assert torch.equal(short.mask[1, :t], alone.mask[0]) and not short.mask[1, t:].any()
    assert torch.allclose(short.tokens[1, :t][alone.mask[0]], alone.tokens[0][alone.mask[0]], atol=1e-5)


def encoder_empty_row_is_finite(case: EncoderCase) -> None:
    """A row with no real step (a missing modality): no real token, zeros, finite gradients."""
    if not case.has_lengths:
        pytest.skip("inputs without lengths")
    encoder = case.build().train()
    out = encoder(**case.inputs([4, 0], 4))
    assert torch.isfinite(out.tokens).all() and out.mask[0].any() and not out.mask[1].any()
    assert torch.all(out.tokens[1] == 0)
    (out.tokens * torch.randn_like(out.tokens)).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in encoder.parameters() if p.grad is not None)


def encoder_gradient_reaches_every_parameter(case: EncoderCase) -> None:
    """Every parameter gets a nonzero gradient (a random readout: a plain sum is blind behind a LayerNorm)."""
    encoder = case.build().train()
    out = encoder(**case.inputs([6, 3], 6))
    (out.tokens * torch.randn_like(out.tokens)).sum().backward()
    for name, p in encoder.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


ENCODER_CHECKS = [
    encoder_shapes_and_mask,
    encoder_padding_invariance,
    encoder_empty_row_is_finite,
    encoder_gradient_reaches_every_parameter,
]


# --- fusers --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FuserCase:
    """One fuser under the contract.

    Attributes:
        id: the test id.
        make: ``modalities -> fuser`` of width :data:`D` (tiny dims, dropout 0); called with
            ``MODALITIES`` (unsorted on purpose).
    """

    id: str
    make: Callable[[list[str]], Fuser]


MODALITIES = ["text", "audio", "image"]  # deliberately unsorted
LENGTHS = {"audio": 5, "image": 4, "text": 3}


def encoded_example(batch: int, seed: int = 0) -> dict[str, EncoderOutput]:
    """Random tokens; every row keeps its first token real, the others real at random."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for m, t in LENGTHS.items():
        mask = torch.rand(batch, t, generator=g) > 0.3
        mask[:, 0] = True
        out[m] = EncoderOutput(torch.randn(batch, t, D, generator=g), mask)
    return out


def all_present(batch: int) -> dict[str, Tensor]:
    return {m: torch.ones(batch, dtype=torch.bool) for m in LENGTHS}


def _fuser(case: FuserCase, train: bool = False) -> Fuser:
    torch.manual_seed(0)
    return case.make(MODALITIES).train(train)


def assert_same_fusion(a: FusionOutput, b: FusionOutput, attention: bool = True) -> None:
    assert torch.allclose(a.pooled, b.pooled, atol=1e-5)
    assert sorted(a.per_modality) == sorted(b.per_modality)
    for m, v in a.per_modality.items():
        assert torch.allclose(v, b.per_modality[m], atol=1e-5), m
    if attention:
        assert sorted(a.attention) == sorted(b.attention)
        for k, w in a.attention.items():
            assert torch.allclose(w, b.attention[k], atol=1e-5), k


def fuser_shapes_and_attention_layout(case: FuserCase) -> None:
    """pooled ``(B, out_dim)``; per_modality sorted, ``(B, D)``; attention ``(B, H, T_q, T_k)``,
    ``"m->others"`` maps over the other modalities' tokens in sorted order, zero on masked keys."""
    fuser = _fuser(case)
    assert fuser.modalities == ["audio", "image", "text"]
    encoded, present = encoded_example(3), all_present(3)
    present["image"] = torch.tensor([True, False, True])
    out = fuser(encoded, present)
    assert isinstance(out, FusionOutput)
    assert out.pooled.shape == (3, fuser.out_dim) and torch.isfinite(out.pooled).all()
    assert list(out.per_modality) == fuser.modalities
    assert all(v.shape == (3, D) for v in out.per_modality.values())
    for key, weights in out.attention.items():
        assert weights.dim() == 4 and weights.shape[0] == 3, key
        assert torch.isfinite(weights).all() and (weights >= 0).all(), key
        query, _, rest = key.partition("->")
        if rest != "others":
            continue
        others = [o for o in fuser.modalities if o != query]
        assert weights.shape[2:] == (LENGTHS[query], sum(LENGTHS[o] for o in others)), key
        keys = torch.cat([encoded[o].mask & present[o][:, None] for o in others], dim=1)  # (B, S)
        assert torch.all(weights.masked_select(~keys[:, None, None, :]) == 0), key
    # the order the dicts were built in does not matter
    reordered = dict(reversed(list(encoded.items())))
    assert_same_fusion(fuser(reordered, dict(reversed(list(present.items())))), out)


def fuser_padding_invariance(case: FuserCase) -> None:
    """Padding every modality with masked garbage tokens changes no output."""
    fuser = _fuser(case)
    encoded, present = encoded_example(3), all_present(3)
    before = fuser(encoded, present)
    g = torch.Generator().manual_seed(1)
    padded = {
        m: EncoderOutput(
            torch.cat([o.tokens, 1e3 * torch.randn(3, 3, D, generator=g)], dim=1),
            torch.cat([o.mask, torch.zeros(3, 3, dtype=torch.bool)], dim=1),
        )
        for m, o in encoded.items()
    }
    # the attention maps grow with the padding; the fused features must not move
    assert_same_fusion(fuser(padded, present), before, attention=False)


def fuser_absence_invariance(case: FuserCase) -> None:
    """An absent modality's tokens and mask, and padded tokens' values (inf/NaN too), change nothing."""
    fuser = _fuser(case)
    encoded, present = encoded_example(4), all_present(4)
    present["audio"] = torch.tensor([False, True, False, True])
    present["text"] = torch.tensor([True, True, False, True])  # row 2: only the image
    before = fuser(encoded, present)
    tokens = encoded["audio"].tokens.clone()
    tokens[[0, 2]] = 1e4 * torch.randn(2, 5, D)
    tokens[2, 1] = float("inf")
    mask = encoded["audio"].mask.clone()
    mask[[0, 2]] = ~mask[[0, 2]]
    text = encoded["text"].tokens.clone()
    text[~encoded["text"].mask] = float("nan")
    garbage = {**encoded, "audio": EncoderOutput(tokens, mask)}
    garbage["text"] = EncoderOutput(text, encoded["text"].mask)
    after = fuser(garbage, present)
    assert torch.isfinite(after.pooled).all()
    assert_same_fusion(after, before)
    assert torch.all(after.per_modality["audio"][[0, 2]] == 0)
    assert torch.all(after.per_modality["text"][2] == 0)


def fuser_every_presence_pattern_is_finite(case: FuserCase) -> None:
    """All 8 presence patterns (none present too), and a present modality with no real token: finite
    outputs and finite gradients to the tokens."""
    fuser = _fuser(case, train=True)
    patterns = list(itertools.product([False, True], repeat=3))
    B = len(patterns)
    present = {m: torch.tensor([p[i] for p in patterns]) for i, m in enumerate(sorted(LENGTHS))}
    encoded = {m: EncoderOutput(o.tokens.requires_grad_(), o.mask) for m, o in encoded_example(B).items()}
    out = fuser(encoded, present)
    assert torch.isfinite(out.pooled).all()
    for m, v in out.per_modality.items():
        assert torch.isfinite(v).all() and torch.all(v[~present[m]] == 0), m
    (out.pooled * torch.randn_like(out.pooled)).sum().backward()
    assert all(torch.isfinite(o.tokens.grad).all() for o in encoded.values())  # type: ignore[arg-type]
    encoded["text"] = EncoderOutput(encoded["text"].tokens, torch.zeros(B, 3, dtype=torch.bool))
    assert torch.isfinite(fuser(encoded, present).pooled).all()


def fuser_gradient_reaches_every_parameter(case: FuserCase) -> None:
    """Every parameter gets a nonzero gradient from ``pooled`` (a random readout)."""
    fuser = _fuser(case, train=True)
    if not any(p.requires_grad for p in fuser.parameters()):
        pytest.skip("no parameters (a decision-level fuser: the heads live in the model)")
    out = fuser(encoded_example(3), all_present(3))
    (out.pooled * torch.randn_like(out.pooled)).sum().backward()
    for name, p in fuser.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def fuser_mismatch_raises(case: FuserCase) -> None:
    """Missing or extra modalities, a wrong width, duplicate or no modalities: ValueError."""
    fuser = _fuser(case)
    encoded, present = encoded_example(2), all_present(2)
    with pytest.raises(ValueError, match="expected"):
        fuser({m: o for m, o in encoded.items() if m != "text"}, present)
    with pytest.raises(ValueError, match="present"):
        fuser(encoded, {**present, "graph": torch.ones(2, dtype=torch.bool)})
    wide = EncoderOutput(torch.randn(2, 3, D + 1), encoded["text"].mask)
    with pytest.raises(ValueError, match="width"):
        fuser({**encoded, "text": wide}, present)
    with pytest.raises(ValueError, match="duplicate"):
        case.make(["text", "text"])
    with pytest.raises(ValueError, match="at least one"):
        case.make([])


FUSER_CHECKS = [
    fuser_shapes_and_attention_layout,
    fuser_padding_invariance,
    fuser_absence_invariance,
    fuser_every_presence_pattern_is_finite,
    fuser_gradient_reaches_every_parameter,
    fuser_mismatch_raises,
]
