import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mmfuse.data.manifest.errors import SampleError
from mmfuse.data.modalities.audio import AudioDataModule

SR = 16000


def _tone(freq: float, seconds: float = 0.25, rate: int = SR) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _write(root: Path, name: str, data: np.ndarray, rate: int = SR, subtype: str | None = "FLOAT") -> str:
    sf.write(root / name, data, rate, subtype=subtype)
    return name


def _slaney_mel(f: float) -> float:
    # linear below 1 kHz, logarithmic above (Slaney's Auditory Toolbox)
    return 3 * f / 200 if f < 1000 else 15 + 27 * math.log(f / 1000) / math.log(6.4)


def _expected_bin(freq: float, n_mels: int, f_max: float = SR / 2) -> int:
    centres = np.linspace(0.0, _slaney_mel(f_max), n_mels + 2)[1:-1]
    return int(np.argmin(np.abs(centres - _slaney_mel(freq))))


def _peak_bin(features: torch.Tensor) -> int:
    return int(features.mean(0).argmax())  # (F, M) -> the loudest mel bin over time


@pytest.mark.parametrize("n", [1234, 16000, 50])
def test_frame_count_and_mask(tmp_path: Path, n: int) -> None:
    name = _write(tmp_path, "a.wav", np.random.default_rng(0).normal(0, 0.1, n).astype(np.float32))
    out = AudioDataModule(n_mels=20).load(name, tmp_path, train=False)
    assert out["input_features"].shape == (1 + n // 160, 20)
    assert out["input_features"].dtype == torch.float32 and torch.isfinite(out["input_features"]).all()
    assert out["feature_mask"].dtype == torch.bool and out["feature_mask"].all()


def test_tones_peak_in_their_mel_bin(tmp_path: Path) -> None:
    dm = AudioDataModule(n_mels=40)
    peaks = {}
    for freq in (300.0, 1000.0, 4000.0):
        # FLAC (16-bit PCM) for one real compressed format
        name = _write(tmp_path, f"{int(freq)}.flac", _tone(freq), subtype=None)
        peaks[freq] = _peak_bin(dm.load(name, tmp_path, train=False)["input_features"])
        assert abs(peaks[freq] - _expected_bin(freq, 40)) <= 1, (freq, peaks[freq])
    assert peaks[300.0] < peaks[1000.0] < peaks[4000.0]
    assert dm.encoder_requirements() == {"input_kind": "log_mel", "sample_rate": 16000, "n_mels": 40}


def test_f_max_narrows_the_filter_bank(tmp_path: Path) -> None:
    name = _write(tmp_path, "a.wav", _tone(1000.0))
    peak = _peak_bin(AudioDataModule(n_mels=32, f_max=4000.0).load(name, tmp_path, False)["input_features"])
    assert abs(peak - _expected_bin(1000.0, 32, f_max=4000.0)) <= 1


def test_stereo_is_mixed_to_mono(tmp_path: Path) -> None:
    left, right = _tone(500.0), _tone(2000.0)
    stereo = _write(tmp_path, "stereo.wav", np.stack([left, right], axis=1))
    mono = _write(tmp_path, "mono.wav", (left + right) / 2)
    dm = AudioDataModule()
    a = dm.load(stereo, tmp_path, train=False)["input_features"]
    b = dm.load(mono, tmp_path, train=False)["input_features"]
    assert torch.allclose(a, b, atol=1e-4)


def test_wrong_rate_raises_naming_file_and_rates(tmp_path: Path) -> None:
    name = _write(tmp_path, "slow.wav", _tone(1000.0, rate=8000), rate=8000)
    with pytest.raises(SampleError, match=r"8000 Hz.*16000 Hz") as info:
        AudioDataModule().load(name, tmp_path, train=False)
    assert info.value.file == str(tmp_path / "slow.wav")


def test_resample_gives_expected_length_and_pitch(tmp_path: Path) -> None:
    slow = _write(tmp_path, "slow.wav", _tone(1000.0, seconds=0.5, rate=8000), rate=8000)
    native = _write(tmp_path, "native.wav", _tone(1000.0, seconds=0.5))
    dm = AudioDataModule(resample=True)
    a = dm.load(slow, tmp_path, train=False)["input_features"]
    assert a.shape[0] == 1 + 8000 // 160  # 4000 samples at 8 kHz -> 8000 at 16 kHz
    assert _peak_bin(a) == _peak_bin(dm.load(native, tmp_path, train=False)["input_features"])


def test_resample_drops_a_tone_above_the_new_nyquist_instead_of_aliasing_it(tmp_path: Path) -> None:
    # 16 kHz -> 8 kHz: 6 kHz cannot be represented (Nyquist 4 kHz). Linear interpolation folds it to
    # a false 2 kHz tone at ~0.4 of its amplitude; a band-limited resampler filters it out.
    dm = AudioDataModule(sample_rate=8000, resample=True, features="waveform")

    def rms(name: str) -> float:
        wave = dm.load(name, tmp_path, train=False)["input_values"]
        assert len(wave) == 4000  # 0.5 s at 8 kHz
        return float(wave[400:-400].pow(2).mean().sqrt())  # away from the filter's edge transients

    high = rms(_write(tmp_path, "high.wav", _tone(6000.0, seconds=0.5)))
    low = rms(_write(tmp_path, "low.wav", _tone(1000.0, seconds=0.5)))
    assert low > 0.9 * 0.5 / math.sqrt(2)  # a tone below the new Nyquist keeps its level
    assert high < 0.02 * low


def test_crop_to_max_seconds(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).normal(0, 0.1, 2 * SR).astype(np.float32)
    name = _write(tmp_path, "long.wav", noise)
    dm = AudioDataModule(max_seconds=0.5)
    val = dm.load(name, tmp_path, train=False)["input_features"]
    assert val.shape[0] == 1 + 8000 // 160
    # val/test take the start
    assert torch.allclose(val, dm.log_mel(torch.from_numpy(noise[:8000])))
    torch.manual_seed(0)
    trains = [dm.load(name, tmp_path, train=True)["input_features"] for _ in range(3)]
    assert all(t.shape == val.shape for t in trains)
    assert any(not torch.allclose(t, val) for t in trains)  # train takes a random window
    short = _write(tmp_path, "short.wav", noise[:1600])
    assert dm.load(short, tmp_path, train=True)["input_features"].shape[0] == 11  # not padded


def test_missing_empty_nan_and_garbage_raise(tmp_path: Path) -> None:
    dm = AudioDataModule()
    with pytest.raises(SampleError, match="file not found") as info:
        dm.load("nope.wav", tmp_path, train=False)
    assert info.value.file == str(tmp_path / "nope.wav")
    empty = _write(tmp_path, "empty.wav", np.zeros(0, dtype=np.float32))
    with pytest.raises(SampleError, match="empty"):
        dm.load(empty, tmp_path, train=False)
    bad = _tone(440.0)
    bad[100] = np.nan
    with pytest.raises(SampleError, match="non-finite"):
        dm.load(_write(tmp_path, "nan.wav", bad), tmp_path, train=False)
    (tmp_path / "junk.wav").write_bytes(b"not audio at all" * 10)
    with pytest.raises(SampleError, match="cannot decode audio") as info:
        dm.load("junk.wav", tmp_path, train=False)
    assert info.value.file == str(tmp_path / "junk.wav")
    with pytest.raises(SampleError, match="silent"):
        dm.load(
            _write(tmp_path, "zero.wav", np.zeros(1600, dtype=np.float32), subtype="PCM_16"), tmp_path, False
        )
    quiet = np.zeros(1600, dtype=np.float32)
    quiet[800] = 1e-3  # one non-zero sample: quiet, not broken
    assert (
        dm.load(_write(tmp_path, "quiet.wav", quiet), tmp_path, train=False)["input_features"]
        .isfinite()
        .all()
    )


def test_collate_pads_and_masks(tmp_path: Path) -> None:
    dm = AudioDataModule(n_mels=8)
    long = dm.load(_write(tmp_path, "a.wav", _tone(500.0, 0.1)), tmp_path, False)  # 1600 -> 11 frames
    short = dm.load(_write(tmp_path, "b.wav", _tone(500.0, 0.05)), tmp_path, False)  # 800 -> 6 frames
    batch = dm.collate([short, None, long])
    x, mask = batch["input_features"], batch["feature_mask"]
    assert x.shape == (3, 11, 8) and mask.shape == (3, 11) and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [6, 0, 11]
    assert torch.equal(x[0, :6], short["input_features"]) and (x[0, 6:] == 0).all()
    assert (x[1] == 0).all()
    assert torch.equal(x[2], long["input_features"])
    only_missing = dm.collate([None])
    assert only_missing["input_features"].shape == (1, 1, 8) and not only_missing["feature_mask"].any()


def test_waveform_features_are_the_samples_padded_with_a_mask(tmp_path: Path) -> None:
    dm = AudioDataModule(features="waveform", max_seconds=0.1)  # 1600 samples at 16 kHz
    tone = _tone(440.0, seconds=0.05)  # 800 samples
    short = dm.load(_write(tmp_path, "short.wav", tone), tmp_path, train=False)
    long = dm.load(_write(tmp_path, "long.wav", _tone(440.0, seconds=0.5)), tmp_path, train=False)
    assert set(short) == {"input_values", "attention_mask"}
    torch.testing.assert_close(short["input_values"], torch.from_numpy(tone))  # the samples, untouched
    assert long["input_values"].shape == (1600,)  # cropped to max_seconds
    batch = dm.collate([short, None, long])
    assert batch["input_values"].shape == (3, 1600) and batch["input_values"].dtype == torch.float32
    assert batch["attention_mask"].sum(dim=1).tolist() == [800, 0, 1600]  # a missing clip: all masked
    assert not batch["input_values"][~batch["attention_mask"]].any()  # padding is zero
    assert dm.collate([None])["input_values"].shape == (1, 1)
    assert dm.encoder_requirements() == {"input_kind": "waveform", "sample_rate": 16000}
    with pytest.raises(ValueError, match="features must be"):
        AudioDataModule(features="mfcc")  # type: ignore[arg-type]
