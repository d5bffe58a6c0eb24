from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mmfuse.data.modalities import stored
from mmfuse.data.modalities.audio import AudioDataModule
from mmfuse.data.modalities.audio_masks import mask_spectrogram
from mmfuse.models.masking import standardized_per_row

SR = 16000


def _frames(length: int = 50, bins: int = 16) -> torch.Tensor:
    """Distinct values everywhere, so a masked cell is told apart from an unmasked one."""
    torch.manual_seed(1)
    return torch.randn(length, bins) * 3 + torch.arange(bins)


def _masked_cells(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    return ~torch.isclose(before, after)


def test_time_masks_replace_whole_frames_by_the_bin_means_within_the_width() -> None:
    x = _frames()
    torch.manual_seed(0)
    for _ in range(20):
        out = mask_spectrogram(x, time_masks=1, max_time_mask=7, freq_masks=0, max_freq_mask=8)
        changed = _masked_cells(x, out).any(dim=1)  # (F,) frames touched
        rows = changed.nonzero().squeeze(1)
        assert len(rows) <= 7
        if len(rows):
            assert rows.max() - rows.min() + 1 == len(rows)  # one contiguous stretch
            assert torch.allclose(out[rows], x.mean(dim=0).expand(len(rows), -1))
        assert torch.equal(out[~changed], x[~changed])
    assert torch.equal(x, _frames())  # the input is never written


def test_freq_masks_replace_bands_and_standardisation_reads_them_as_zero() -> None:
    x = _frames()
    torch.manual_seed(3)
    widths = set()
    for _ in range(30):
        out = mask_spectrogram(x, time_masks=0, max_time_mask=10, freq_masks=1, max_freq_mask=5)
        cols = _masked_cells(x, out).any(dim=0).nonzero().squeeze(1)
        widths.add(len(cols))
        if len(cols):
            assert torch.allclose(out[:, cols], x[:, cols].mean(dim=0).expand(len(x), -1))
            normalised = standardized_per_row(out[None], torch.ones(1, len(x), dtype=torch.bool))[0]
            assert torch.allclose(normalised[:, cols], torch.zeros(len(x), len(cols)), atol=1e-5)
    assert max(widths) <= 5 and len(widths) > 2  # widths vary, never past the maximum


def test_masks_wider_than_the_clip_are_capped_and_empty_clips_pass() -> None:
    x = _frames(length=3, bins=4)
    torch.manual_seed(0)
    out = mask_spectrogram(x, time_masks=5, max_time_mask=100, freq_masks=5, max_freq_mask=100)
    assert out.shape == x.shape
    assert mask_spectrogram(torch.zeros(0, 4), 2, 10, 2, 8).shape == (0, 4)


def _clip(root: Path) -> str:
    rng = np.random.default_rng(0)
    sf.write(root / "a.wav", (rng.standard_normal(SR // 2) * 0.1).astype(np.float32), SR, subtype="FLOAT")
    return "a.wav"


def test_the_data_masks_train_clips_only_and_only_when_asked(tmp_path: Path) -> None:
    cell = _clip(tmp_path)
    plain = AudioDataModule(sample_rate=SR)
    masked = AudioDataModule(sample_rate=SR, time_masks=2, max_time_mask=10, freq_masks=2, max_freq_mask=8)
    reference = plain.load(cell, tmp_path, train=False)["input_features"]
    for train in (False, True):  # no masks asked: the same frames on either split
        assert torch.equal(plain.load(cell, tmp_path, train=train)["input_features"], reference)
    assert torch.equal(masked.load(cell, tmp_path, train=False)["input_features"], reference)
    torch.manual_seed(0)
    draws = [masked.load(cell, tmp_path, train=True)["input_features"] for _ in range(5)]
    assert all(d.shape == reference.shape for d in draws)
    assert any(_masked_cells(reference, d).any() for d in draws)
    assert len({_masked_cells(reference, d).sum().item() for d in draws}) > 1  # drawn anew each time


def test_frames_stored_by_pack_are_masked_on_train_as_decoded_ones(tmp_path: Path) -> None:
    cell = _clip(tmp_path)
    masked = AudioDataModule(sample_rate=SR, time_masks=2, freq_masks=2)
    wave = masked.decode_wave(str(tmp_path / cell), cell)
    member = masked.precompute(wave)
    assert stored.load(member, masked.stored_settings(), "a.npy").shape[1] == masked.n_mels
    val = masked.load_bytes(member, "a.audio.npy", train=False)["input_features"]
    torch.manual_seed(0)
    train = [masked.load_bytes(member, "a.audio.npy", train=True)["input_features"] for _ in range(5)]
    assert torch.equal(val, masked.load(cell, tmp_path, train=False)["input_features"])
    assert any(_masked_cells(val, t).any() for t in train)


@pytest.mark.parametrize(
    "kwargs",
    [{"time_masks": -1}, {"max_freq_mask": -2}, {"features": "waveform", "time_masks": 1}],
)
def test_bad_mask_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="mask"):
        AudioDataModule(sample_rate=SR, **kwargs)
