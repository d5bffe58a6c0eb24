"""What is specific to each built-in encoder (the shared contract is tests/models/test_contracts.py):
no NaN inside text encoders on empty rows, the text mask passed through, errors, image positions."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from mmfuse.models.encoders import AudioCNN, AudioTransformer, ImageCNN, ImageViT, TextRNN, TextTransformer

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


@pytest.mark.parametrize("encoder", _text_encoders(), ids=TEXT_IDS)
def test_text_tokens_are_the_input_positions(encoder: nn.Module) -> None:
    ids, mask = _text_batch([5, 2, 4], 6)
    out = encoder.eval()(ids, mask)
    assert out.tokens.shape == (3, 6, D) and torch.equal(out.mask, mask)
    assert encoder.vocab_size == VOCAB and encoder.d_model == D


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


def test_audio_cnn_frames_are_tokens_and_wrong_mels_raise() -> None:
    encoder = AudioCNN(n_mels=5, d_model=D, channels=[6, 7], kernel_size=3).eval()
    mask = torch.arange(9)[None, :] < torch.tensor([9, 4])[:, None]
    out = encoder(torch.randn(2, 9, 5), mask)
    assert out.tokens.shape == (2, 9, D) and torch.equal(out.mask, mask) and encoder.n_mels == 5
    with pytest.raises(ValueError, match="input_features"):
        encoder(torch.randn(2, 9, 4), mask)


def test_audio_cnn_normalize_ignores_loudness_and_colouring_and_keeps_padding_exact() -> None:
    encoder = AudioCNN(n_mels=5, d_model=D, channels=[6], kernel_size=3, normalize=True).eval()
    g = torch.Generator().manual_seed(0)
    clip = torch.randn(1, 7, 5, generator=g)
    full = torch.ones(1, 7, dtype=torch.bool)
    base = encoder(clip, full).tokens
    # louder by a gain (a constant on log-mel) and coloured by a microphone (a constant per bin)
    torch.testing.assert_close(encoder(clip + 3.0 + torch.randn(1, 1, 5, generator=g), full).tokens, base)
    # scaled log-mel (another floor or log base) too
    torch.testing.assert_close(encoder(clip * 2.5, full).tokens, base)
    # padded with garbage in a longer batch: the real frames' tokens are the unpadded clip's
    padded = torch.cat([clip, torch.full((1, 4, 5), 1e4)], dim=1)
    mask = torch.arange(11)[None, :] < 7
    torch.testing.assert_close(encoder(padded, mask).tokens[:, :7], base)
    # without it, loudness changes the tokens
    plain = AudioCNN(n_mels=5, d_model=D, channels=[6], kernel_size=3).eval()
    assert not torch.allclose(plain(clip + 3.0, full).tokens, plain(clip, full).tokens)


def test_image_vit_patch_grid_and_size_errors() -> None:
    encoder = ImageViT(in_channels=1, d_model=D, patch_size=4, num_layers=1, num_heads=2).eval()
    out = encoder(torch.randn(2, 1, 16, 12))
    assert out.tokens.shape == (2, 4 * 3, D) and out.mask.all()
    # a constant image still gives distinct tokens: the 2D positions tell patches apart
    flat = encoder(torch.zeros(1, 1, 16, 12)).tokens[0]
    assert torch.cdist(flat, flat).add(torch.eye(12)).min() > 1e-3
    with pytest.raises(ValueError, match="patch_size=4"):
        encoder(torch.randn(2, 1, 16, 10))
    with pytest.raises(ValueError, match="pixel_values"):
        encoder(torch.randn(2, 3, 16, 12))


def test_audio_transformer_patches_are_time_major_and_partial_patches_real() -> None:
    encoder = AudioTransformer(n_mels=6, d_model=D, patch_frames=4, patch_mels=3, num_layers=1, num_heads=2)
    mask = torch.arange(9)[None, :] < torch.tensor([9, 5])[:, None]  # row 1: frame 4 alone in patch 1
    out = encoder.eval()(torch.randn(2, 9, 6), mask)
    # ceil(9 / 4) = 3 time steps x 6 / 3 = 2 bands, time-major: [t0b0, t0b1, t1b0, t1b1, t2b0, t2b1]
    assert out.tokens.shape == (2, 6, D)
    assert out.mask.tolist() == [[True] * 6, [True] * 4 + [False] * 2]
    assert encoder.n_mels == 6 and encoder.input_kind == "log_mel"
    with pytest.raises(ValueError, match="input_features"):
        encoder(torch.randn(2, 9, 5), mask)
    with pytest.raises(ValueError, match="patch_mels"):
        AudioTransformer(n_mels=6, patch_mels=4)
