"""Encoders: shapes, masks, padding invariance, empty rows, gradients."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from mmfuse.models.encoders import AudioCNN, ImageCNN, TextRNN, TextTransformer
from mmfuse.types import EncoderOutput

D = 8
VOCAB = 20


def _text_batch(lengths: list[int], max_len: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Right-padded ids in [1, VOCAB) with pad id 0, and the matching mask."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (len(lengths), max_len), generator=g)
    mask = torch.arange(max_len)[None, :] < torch.tensor(lengths)[:, None]
    return ids.masked_fill(~mask, 0), mask


def _text_encoders() -> list[nn.Module]:
    return [
        TextRNN(VOCAB, d_model=D, embed_dim=6, hidden_size=5, cell="gru"),
        TextRNN(VOCAB, d_model=D, embed_dim=6, hidden_size=5, num_layers=2, cell="lstm"),
        TextRNN(VOCAB, d_model=D, embed_dim=6, hidden_size=5, bidirectional=False),
        TextTransformer(VOCAB, d_model=D, num_layers=2, num_heads=2, ff_mult=2, max_length=16),
    ]


TEXT_IDS = ["gru-bi", "lstm-2layer", "gru-uni", "transformer"]


@pytest.mark.parametrize("encoder", _text_encoders(), ids=TEXT_IDS)
def test_text_shapes_mask_and_zero_padding(encoder: nn.Module) -> None:
    ids, mask = _text_batch([5, 2, 4], 6)
    out = encoder.eval()(ids, mask)
    assert isinstance(out, EncoderOutput)
    assert out.tokens.shape == (3, 6, D) and torch.equal(out.mask, mask)
    assert torch.all(out.tokens[~mask] == 0) and torch.all(out.tokens[mask].abs().sum(-1) > 0)
    assert encoder.vocab_size == VOCAB and encoder.d_model == D


@pytest.mark.parametrize("encoder", _text_encoders(), ids=TEXT_IDS)
def test_text_padding_invariance(encoder: nn.Module) -> None:
    torch.manual_seed(0)
    encoder.eval()
    ids, mask = _text_batch([5, 3], 5)
    short = encoder(ids, mask).tokens  # (2, 5, D)
    long_ids = torch.cat([ids, torch.zeros(2, 4, dtype=torch.long)], dim=1)
    long_mask = torch.cat([mask, torch.zeros(2, 4, dtype=torch.bool)], dim=1)
    long = encoder(long_ids, long_mask).tokens  # (2, 9, D)
    # row 1 alone, unpadded: the backward RNN must start at its last real token
    alone = encoder(ids[1:, :3], mask[1:, :3]).tokens
    assert torch.allclose(long[:, :5][mask], short[mask], atol=1e-5)
    assert torch.allclose(long[1, :3], alone[0], atol=1e-5)


@pytest.mark.parametrize("encoder", _text_encoders(), ids=TEXT_IDS)
def test_text_zero_length_rows_no_nan(encoder: nn.Module) -> None:
    ids, mask = _text_batch([4, 0, 0], 4)
    ids[2] = 7  # garbage ids in a row with no real token must not matter either
    # NaN anywhere inside (not only in the output) would poison gradients; the no_grad eval
    # run takes PyTorch's fused attention path, which gives NaN for a row with no key.
    # Hooks on a TransformerEncoderLayer would switch that path off, so none go inside one.
    fused = {
        id(sub)
        for mod in encoder.modules()
        if isinstance(mod, nn.TransformerEncoderLayer)
        for sub in mod.modules()
    }
    bad: list[str] = []
    hooks = [
        mod.register_forward_hook(
            lambda _m, _i, o, n=name: (
                bad.append(n) if isinstance(o, Tensor) and not o.isfinite().all() else None
            )
        )
        for name, mod in encoder.named_modules()
        if id(mod) not in fused
    ]
    with torch.no_grad():
        encoder.eval()(ids, mask)
    for hook in hooks:
        hook.remove()
    assert not bad, bad
    out = encoder.train()(ids, mask)
    assert torch.isfinite(out.tokens).all()
    assert not out.mask[1:].any() and torch.all(out.tokens[1:] == 0)
    (out.tokens * torch.randn_like(out.tokens)).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in encoder.parameters() if p.grad is not None)


def test_text_rnn_rejects_left_padding_and_bad_cell() -> None:
    encoder = TextRNN(VOCAB, d_model=D)
    with pytest.raises(ValueError, match="right-padded"):
        encoder(torch.ones(1, 3, dtype=torch.long), torch.tensor([[False, True, True]]))
    with pytest.raises(ValueError, match="cell"):
        TextRNN(VOCAB, cell="rnn")  # type: ignore[arg-type]


def test_text_transformer_rejects_too_long_and_bad_heads() -> None:
    encoder = TextTransformer(VOCAB, d_model=D, num_heads=2, max_length=4)
    ids, mask = _text_batch([5], 5)
    with pytest.raises(ValueError, match="max_length"):
        encoder(ids, mask)
    with pytest.raises(ValueError, match="num_heads"):
        TextTransformer(VOCAB, d_model=6, num_heads=4)


def test_image_cnn_shapes_and_positions() -> None:
    encoder = ImageCNN(in_channels=1, d_model=D, channels=[4, 6]).eval()
    out = encoder(torch.randn(2, 1, 16, 12))
    assert out.tokens.shape == (2, 4 * 3, D) and out.mask.shape == (2, 12) and out.mask.all()
    # a constant image still gives distinct tokens: the 2D positions tell cells apart
    flat = encoder(torch.zeros(1, 1, 16, 12)).tokens[0]
    assert torch.cdist(flat, flat).add(torch.eye(12)).min() > 1e-3
    assert encoder.in_channels == 1 and encoder.d_model == D
    with pytest.raises(ValueError, match="pixel_values"):
        encoder(torch.randn(2, 3, 16, 12))


def _audio() -> AudioCNN:
    return AudioCNN(n_mels=5, d_model=D, channels=[6, 7], kernel_size=3)


def test_audio_cnn_shapes_and_mask() -> None:
    encoder = _audio().eval()
    mask = torch.arange(9)[None, :] < torch.tensor([9, 4])[:, None]
    out = encoder(torch.randn(2, 9, 5), mask)
    assert out.tokens.shape == (2, 9, D) and torch.equal(out.mask, mask)
    assert torch.all(out.tokens[~mask] == 0) and encoder.n_mels == 5 and encoder.d_model == D
    with pytest.raises(ValueError, match="input_features"):
        encoder(torch.randn(2, 9, 4), mask)


def test_audio_cnn_padding_invariance_with_garbage_frames() -> None:
    torch.manual_seed(0)
    encoder = _audio().eval()
    feats = torch.randn(2, 6, 5)
    mask = torch.arange(6)[None, :] < torch.tensor([6, 4])[:, None]
    short = encoder(feats, mask).tokens
    # row 1's frames 4-5 and the new frames 6-9 hold garbage that must not leak into real frames
    long_feats = torch.cat([feats, 1e3 * torch.randn(2, 4, 5)], dim=1)
    long_feats[1, 4:6] = 1e3
    long_mask = torch.cat([mask, torch.zeros(2, 4, dtype=torch.bool)], dim=1)
    long = encoder(long_feats, long_mask).tokens
    assert torch.allclose(long[:, :6][mask], short[mask], atol=1e-5)
    alone = encoder(feats[1:, :4], mask[1:, :4]).tokens
    assert torch.allclose(long[1, :4], alone[0], atol=1e-5)


def test_audio_cnn_all_false_mask_no_nan() -> None:
    out = _audio()(torch.randn(2, 5, 5), torch.tensor([[True] * 5, [False] * 5]))
    assert torch.isfinite(out.tokens).all() and torch.all(out.tokens[1] == 0)


def _all_encoders() -> list[tuple[nn.Module, dict[str, Tensor]]]:
    ids, mask = _text_batch([5, 3], 5)
    audio_mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    return [
        (ImageCNN(in_channels=3, d_model=D, channels=[4, 6]), {"pixel_values": torch.randn(2, 3, 8, 8)}),
        *((enc, {"input_ids": ids, "attention_mask": mask}) for enc in _text_encoders()),
        (_audio(), {"input_features": torch.randn(2, 6, 5), "feature_mask": audio_mask}),
    ]


@pytest.mark.parametrize(("encoder", "inputs"), _all_encoders(), ids=["image", *TEXT_IDS, "audio"])
def test_gradient_reaches_every_parameter(encoder: nn.Module, inputs: dict[str, Tensor]) -> None:
    torch.manual_seed(0)
    out = encoder.train()(**inputs)
    # a random readout: a plain sum is blind to anything behind a LayerNorm
    (out.tokens * torch.randn_like(out.tokens)).sum().backward()
    for name, p in encoder.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name
