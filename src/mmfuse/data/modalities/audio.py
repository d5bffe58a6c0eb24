"""Audio: decode with soundfile, mix to mono, crop, and give a log-mel spectrogram (computed with torch)
or the waveform itself (for wav2vec2-style pretrained encoders)."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import numpy as np
import soundfile as sf
import torch
from scipy.signal import resample_poly
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence
from transformers.audio_utils import mel_filter_bank

from mmfuse.data.manifest.errors import SampleError
from mmfuse.data.modalities import stored
from mmfuse.data.modalities.audio_masks import mask_spectrogram
from mmfuse.data.modalities.base import ModalityDataModule, Sample, SampleView

if TYPE_CHECKING:
    from mmfuse.data.manifest.source import ManifestSource

_LOG_FLOOR = 1e-6  # added before the log so that silence gives a finite value


class AudioDataModule(ModalityDataModule):
    """Decodes audio files (WAV, FLAC, OGG, anything libsndfile reads) into log-mel spectrograms or waveforms.

    Each file is mixed to mono and cropped to ``max_seconds``. Then, by ``features``:

    - ``"log_mel"`` (default): ``log(mel power + 1e-6)`` with ``torch.stft`` (Hann window, centred
      frames) and a Slaney mel filter bank. A clip of ``N`` samples gives ``F = 1 + N // hop_length``
      frames. The encoder receives ``input_features`` ``(B, F, M)`` and ``feature_mask`` ``(B, F)``
      bool (True = real frame), padded to the longest clip.
    - ``"waveform"``: the samples themselves, for raw-waveform pretrained encoders (wav2vec2, HuBERT,
      WavLM through ``HFAudioEncoder``, which normalises each clip as the backbone's feature
      extractor does). The encoder receives ``input_values`` ``(B, N)`` float and
      ``attention_mask`` ``(B, N)`` bool (True = real sample), zero-padded to the longest clip; set
      ``sample_rate`` to the encoder's (16000 for these models: checked before training).

    Args:
        column: manifest column holding the audio path, relative to the manifest's folder.
        sample_rate: the rate, in Hz, that every file must have (or is resampled to).
        resample: False: a file at another rate is an error. True: convert it on the fly,
            band-limited (``scipy.signal.resample_poly``): what lies above the new Nyquist
            frequency is filtered out, not aliased.
        max_seconds: longer clips are cropped to this length: the start on val/test, a random
            window on the train split. Shorter clips are kept as they are (padded per batch).
        features: ``"log_mel"`` spectrogram frames or the ``"waveform"`` (see above); the
            ``n_fft``/``hop_length``/``n_mels``/``f_min``/``f_max`` settings only apply to log-mel.
        n_fft: FFT size of each frame, in samples; gives ``n_fft // 2 + 1`` frequency bins.
        hop_length: samples between the starts of successive frames.
        n_mels: number of mel bins ``M``.
        f_min: lowest frequency of the mel filter bank, in Hz.
        f_max: highest frequency of the mel filter bank, in Hz. Default ``sample_rate / 2``.
        time_masks: train split only, SpecAugment-style: hide this many random stretches of each
            clip's frames, each 0..``max_time_mask`` frames wide, behind the clip's average spectrum
            (:mod:`~mmfuse.data.modalities.audio_masks`). 0: none. Val and test are never masked.
        max_time_mask: the widest masked stretch, in frames.
        freq_masks: train split only: hide this many random bands of mel bins, each
            0..``max_freq_mask`` bins wide. 0: none.
        max_freq_mask: the widest masked band, in mel bins.
        required: an empty cell is a problem (check-data reports it; training raises or skips the
            row, see ``on_bad_sample``) instead of marking this modality missing for the sample.
        source: the manifest, only needed when this module is used alone.
        batch_size: samples per batch, only used when alone.
        num_workers: DataLoader worker processes, only used when alone.
    """

    name = "audio"
    cell_is_path = True

    def __init__(
        self,
        column: str = "audio",
        sample_rate: int = 16000,
        resample: bool = False,
        max_seconds: float = 1.0,
        features: Literal["log_mel", "waveform"] = "log_mel",
        n_fft: int = 400,
        hop_length: int = 160,
        n_mels: int = 40,
        f_min: float = 0.0,
        f_max: float | None = None,
        time_masks: int = 0,
        max_time_mask: int = 10,
        freq_masks: int = 0,
        max_freq_mask: int = 8,
        required: bool = False,
        source: ManifestSource | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        super().__init__(
            column=column, required=required, source=source, batch_size=batch_size, num_workers=num_workers
        )
        for label, value in (("sample_rate", sample_rate), ("n_fft", n_fft), ("hop_length", hop_length)):
            if value < 1:
                raise ValueError(f"{label} must be >= 1, got {value}")
        if n_mels < 1:
            raise ValueError(f"n_mels must be >= 1, got {n_mels}")
        if features not in ("log_mel", "waveform"):
            raise ValueError(f"features must be 'log_mel' or 'waveform', got {features!r}")
        if max_seconds <= 0:
            raise ValueError(f"max_seconds must be positive, got {max_seconds}")
        for label, value in (
            ("time_masks", time_masks),
            ("max_time_mask", max_time_mask),
            ("freq_masks", freq_masks),
            ("max_freq_mask", max_freq_mask),
        ):
            if value < 0:
                raise ValueError(f"{label} must be >= 0, got {value}")
        if features == "waveform" and (time_masks or freq_masks):
            raise ValueError("time_masks and freq_masks mask log-mel frames: features='waveform' has none")
        top = sample_rate / 2 if f_max is None else f_max
        if not 0 <= f_min < top <= sample_rate / 2:
            raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2, got f_min={f_min}, f_max={top}")
        self.sample_rate = sample_rate
        self.resample = resample
        self.max_seconds = max_seconds
        self.features = features
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.f_min = f_min
        self.f_max = f_max
        self.max_samples = max(1, round(max_seconds * sample_rate))
        self.masks = (time_masks, max_time_mask, freq_masks, max_freq_mask)
        self._window = torch.hann_window(n_fft)
        bank = mel_filter_bank(
            num_frequency_bins=n_fft // 2 + 1,
            num_mel_filters=n_mels,
            min_frequency=f_min,
            max_frequency=top,
            sampling_rate=sample_rate,
            norm="slaney",
            mel_scale="slaney",
        )
        self._mel = torch.from_numpy(bank.astype(np.float32))  # (n_fft // 2 + 1, M)

    def load(self, cell: str, root: Path, train: bool) -> Sample:
        """Decode one audio file into ``{"input_features": (F, M) float32, "feature_mask": (F,) bool}``
        (log-mel), or ``{"input_values": (N,) float32, "attention_mask": (N,) bool}`` (waveform).

        Raises:
            SampleError: missing or undecodable file, wrong sample rate (with ``resample=False``),
                no samples, NaN/inf samples, or every sample zero.
        """
        path = root / cell
        if not path.is_file():
            raise SampleError("file not found", file=str(path))
        return self._decode(str(path), str(path), train)

    def load_bytes(self, data: bytes, name: str, train: bool) -> Sample:
        """Decode one audio file read from elsewhere (a shard member), as :meth:`load` decodes a file;
        a ``.npy`` member holds log-mel frames computed when packing (``mmfuse pack --audio_features``)."""
        if name.endswith(".npy"):
            return self._precomputed(data, name, train)
        return self._decode(io.BytesIO(data), name, train)

    def _decode(self, source: str | BinaryIO, name: str, train: bool) -> Sample:
        wave = self._crop(self.decode_wave(source, name), train)
        if self.features == "waveform":
            return {"input_values": wave, "attention_mask": torch.ones(len(wave), dtype=torch.bool)}
        return self._frames(self.log_mel(wave), train)

    def _frames(self, features: Tensor, train: bool) -> Sample:
        """The sample of ``(F, M)`` log-mel frames, masked on the train split (``time_masks``, ...)."""
        if train and (self.masks[0] or self.masks[2]):
            features = mask_spectrogram(features, *self.masks)
        return {"input_features": features, "feature_mask": torch.ones(len(features), dtype=torch.bool)}

    def decode_wave(self, source: str | BinaryIO, name: str) -> Tensor:
        """A file's ``(N,)`` mono float32 samples at ``sample_rate``, before cropping.

        Raises:
            SampleError: see :meth:`load`.
        """
        try:
            data, rate = sf.read(source, dtype="float32", always_2d=True)  # (N, channels)
        except (sf.SoundFileError, RuntimeError, OSError, TypeError) as e:
            raise SampleError(f"cannot decode audio: {e}", file=name) from None
        if data.shape[0] == 0:
            raise SampleError("empty audio", file=name)
        mono = data.mean(axis=1)  # (N,)
        if not np.isfinite(mono).all():
            raise SampleError("audio has non-finite samples (NaN or inf)", file=name)
        if not data.any():
            # a dropout in recording or a failed export, not a quiet sound: its log-mel is a constant
            raise SampleError("audio is silent (every sample is zero)", file=name)
        if rate != self.sample_rate:
            if not self.resample:
                raise SampleError(
                    f"sample rate is {rate} Hz but sample_rate={self.sample_rate} Hz "
                    "(set resample: true to convert on the fly)",
                    file=name,
                )
            mono = _resample(mono, rate, self.sample_rate)
        return torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))

    def stored_settings(self) -> dict[str, float]:
        """What the log-mel frames of a clip depend on: stored with precomputed frames, and checked."""
        top = self.sample_rate / 2 if self.f_max is None else self.f_max
        return {
            "sample_rate": self.sample_rate,
            "max_seconds": self.max_seconds,
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "n_mels": self.n_mels,
            "f_min": self.f_min,
            "f_max": top,
        }

    def precompute(self, wave: Tensor) -> bytes:
        """A clip's log-mel frames (``wave``: ``(N,)`` samples, at most ``max_seconds``) stored with the
        settings they were computed with (see :mod:`mmfuse.data.modalities.stored`), which
        :meth:`load_bytes` reads back."""
        if len(wave) > self.max_samples:
            raise ValueError("a clip longer than max_seconds is cropped when read: precompute the crop")
        return stored.dump(self.stored_settings(), self.log_mel(wave).numpy())

    def _precomputed(self, data: bytes, name: str, train: bool) -> Sample:
        """Log-mel frames stored by :meth:`precompute`, if computed as this module computes them."""
        if self.features == "waveform":
            raise SampleError(
                "holds log-mel frames, not the audio: features='waveform' needs the audio", file=name
            )
        features = stored.load(data, self.stored_settings(), name)
        if features.dtype != np.float32 or features.ndim != 2 or features.shape[1] != self.n_mels:
            raise SampleError(
                f"log-mel frames of {features.dtype} {features.shape}, not float32 (F, {self.n_mels})",
                file=name,
            )
        return self._frames(torch.from_numpy(features.copy()), train)  # a copy: the bytes are read-only

    def _crop(self, wave: Tensor, train: bool) -> Tensor:
        excess = len(wave) - self.max_samples
        if excess <= 0:
            return wave
        start = int(torch.randint(0, excess + 1, ()).item()) if train else 0
        return wave[start : start + self.max_samples]

    def log_mel(self, wave: Tensor) -> Tensor:
        """``(N,)`` mono samples -> ``(F, M)`` log-mel power, ``F = 1 + N // hop_length``."""
        # centring reflect-pads n_fft // 2 samples each side, which needs a longer clip than that
        pad_mode = "reflect" if len(wave) > self.n_fft // 2 else "constant"
        spec = torch.stft(
            wave,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            window=self._window,
            center=True,
            pad_mode=pad_mode,
            return_complex=True,
        )  # (n_fft // 2 + 1, F)
        power = spec.abs().pow(2)
        mel = power.T @ self._mel  # (F, M)
        return torch.log(mel + _LOG_FLOOR)

    def collate(self, samples: Sequence[Sample | None]) -> dict[str, Tensor]:
        """Pad to the longest clip: ``{"input_features": (B, F, M), "feature_mask": (B, F) bool}``
        (log-mel) or ``{"input_values": (B, N), "attention_mask": (B, N) bool}`` (waveform).

        Padding is 0 with mask False; a missing clip (``None``) is one masked frame (sample).
        """
        waveform = self.features == "waveform"
        key, mask_key = ("input_values", "attention_mask") if waveform else ("input_features", "feature_mask")
        empty = torch.zeros(0) if waveform else torch.zeros(0, self.n_mels)
        clips = [empty if s is None else s[key] for s in samples]
        lengths = torch.tensor([len(c) for c in clips])  # (B,)
        values = pad_sequence(clips, batch_first=True)  # (B, F, M) or (B, N), zero padded
        if values.shape[1] == 0:
            values = torch.zeros(len(samples), 1, *empty.shape[1:])
        mask = torch.arange(values.shape[1])[None, :] < lengths[:, None]  # (B, F) or (B, N)
        return {key: values, mask_key: mask}

    def sample_view(self, cell: str, root: Path, inputs: Mapping[str, Tensor], b: int) -> SampleView:
        """The audio file, as it is on disk (before resampling and cropping)."""
        return SampleView("audio", str(root / cell))

    def encoder_requirements(self) -> dict[str, Any]:
        """The feature kind and rate for every audio encoder that declares them (``HFAudioEncoder``:
        ``input_kind``, ``sample_rate``), and the mel bins for log-mel frames (``n_mels``)."""
        if self.features == "waveform":
            return {"input_kind": "waveform", "sample_rate": self.sample_rate}
        return {"input_kind": "log_mel", "sample_rate": self.sample_rate, "n_mels": self.n_mels}


def _resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Resample ``(N,)`` samples from ``rate`` to ``target`` Hz, band-limited: scipy's polyphase filter
    removes what lies above the lower Nyquist frequency, so a tone too high for ``target`` is dropped
    instead of aliasing to a false lower pitch (as linear interpolation would)."""
    common = math.gcd(rate, target)
    return resample_poly(wave, target // common, rate // common)
