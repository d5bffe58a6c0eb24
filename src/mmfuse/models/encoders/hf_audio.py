"""A pretrained Hugging Face speech backbone (wav2vec2-style from waveforms, or Whisper's encoder from
log-mel frames) whose output frames are the tokens."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
from torch import Tensor, nn

from mmfuse.models.encoders.hf_common import HFEncoderBase, backbone_width, preprocessor_dict
from mmfuse.models.masking import zero_masked
from mmfuse.types import EncoderOutput


class HFAudioEncoder(HFEncoderBase):
    """``transformers.AutoModel`` over audio; each output frame, projected to ``D``, is a token.

    Two kinds of backbone, told apart by what the model takes (:attr:`input_kind`):

    - ``"waveform"``: raw-waveform models with a convolutional feature encoder (wav2vec2, HuBERT,
      WavLM, data2vec-audio, ...). Inputs ``input_values`` ``(B, N)`` mono samples at
      :attr:`sample_rate` (``AudioDataModule(features="waveform")``) and ``attention_mask``
      ``(B, N)`` bool. Each clip is normalised here to zero mean and unit variance over its real
      samples where the backbone's feature extractor does so (``do_normalize``, :attr:`normalize`),
      exactly as it would, so the data stays plain samples. Padded samples are zeroed. The mask is passed
      to the model only where its feature extractor says so (``return_attention_mask``, else
      ``feat_extract_norm == "layer"``): models like wav2vec2-base were trained on zero padding
      without a mask, so their real frames there see the padding, as in Hugging Face.
    - ``"log_mel"``: Whisper's encoder. Inputs ``input_features`` ``(B, F, M)`` log-mel frames
      (``M`` = :attr:`n_mels`, 10 ms hop) and ``feature_mask`` ``(B, F)``: the layout of
      ``AudioDataModule``. Whisper takes a fixed window (30 s: 3000 frames); shorter clips are
      padded with each clip's lowest value (silence, as Whisper saw padding in pretraining). Whisper
      has no attention mask. For the pretrained weights the features must be Whisper's own
      (``log10``, clamped to 8 below the maximum, ``(x + 4) / 4``), not the data module's plain
      ``log(mel + 1e-6)``.

    Output frames: the model's frame rate (wav2vec2: 20 ms, Whisper: 20 ms); the mask marks frames
    computed from real input (``_get_feat_extract_output_lengths`` of the real length), and the
    tokens are cut to the longest real sequence of the batch (Whisper: not the whole 30 s window).
    Masked tokens are zero; a missing clip gives all-zero, all-masked tokens.

    Args:
        model_name_or_path: a hub id (``facebook/wav2vec2-base``, ``openai/whisper-tiny``) or a folder.
        d_model: output width ``D``.
        freeze: freeze the backbone (no gradients, kept in eval mode); the projection still trains.
        trust_remote_code: allow the model's own code from the hub. Off unless set in the config.
        gradient_checkpointing: recompute the backbone's activations in backward to save memory.
        config_only: random weights of the model's architecture, no pretrained weights loaded.
        normalize: normalise each waveform to zero mean, unit variance (over its real samples). None:
            as the backbone's feature extractor says (``do_normalize``; True where it has none).

    Attributes:
        input_kind: ``"waveform"`` or ``"log_mel"``, the inputs :meth:`forward` needs.
        sample_rate: the rate the backbone was pretrained at (its feature extractor's, else 16000).
        n_mels: mel bins ``M`` of a log-mel backbone; None for a waveform backbone.
        normalize: whether waveforms are normalised per clip before the backbone.
    """

    def __init__(
        self,
        model_name_or_path: str,
        d_model: int = 64,
        freeze: bool = False,
        trust_remote_code: bool = False,
        gradient_checkpointing: bool = False,
        config_only: bool = False,
        normalize: bool | None = None,
    ) -> None:
        super().__init__(model_name_or_path, freeze, trust_remote_code, gradient_checkpointing, config_only)
        config = self.backbone.config
        takes = getattr(self.backbone, "main_input_name", None)
        self.n_mels: int | None = None
        self._window = 0  # Whisper's fixed number of input frames
        if takes == "input_values" and hasattr(self.backbone, "_get_feat_extract_output_lengths"):
            self.input_kind = "waveform"
        elif config.model_type == "whisper":
            self.input_kind = "log_mel"
            self.n_mels = int(config.num_mel_bins)
            strides = [cast(nn.Conv1d, getattr(self.backbone, c)).stride[0] for c in ("conv1", "conv2")]
            self._window = int(config.max_source_positions) * strides[0] * strides[1]
        else:
            raise ValueError(
                f"HFAudioEncoder: {type(self.backbone).__name__} ({model_name_or_path}) is not supported: "
                "use a raw-waveform model with a conv feature encoder (wav2vec2, HuBERT, WavLM) or Whisper"
            )
        extractor = preprocessor_dict(model_name_or_path, trust_remote_code)
        self.sample_rate = int(extractor.get("sampling_rate", 16000))
        self.normalize = bool(extractor.get("do_normalize", True)) if normalize is None else normalize
        self.pass_attention_mask = bool(
            extractor.get("return_attention_mask", getattr(config, "feat_extract_norm", None) == "layer")
        )
        self.d_model = d_model
        self.backbone_dim = backbone_width(config, "HFAudioEncoder")
        self.proj = nn.Linear(self.backbone_dim, d_model)

    def _min_samples(self) -> int:
        """The fewest samples that give one frame (the conv feature encoder's receptive field)."""
        config = self.backbone.config
        n = 1
        for k, s in reversed(list(zip(config.conv_kernel, config.conv_stride, strict=True))):
            n = (n - 1) * s + k
        return n

    def forward(
        self,
        input_values: Tensor | None = None,
        attention_mask: Tensor | None = None,
        input_features: Tensor | None = None,
        feature_mask: Tensor | None = None,
    ) -> EncoderOutput:
        """Encode a batch of padded clips: waveforms or log-mel frames, as :attr:`input_kind` says.

        Args:
            input_values: ``(B, N)`` float waveforms (waveform backbones).
            attention_mask: ``(B, N)`` bool, True = real sample.
            input_features: ``(B, F, M)`` float log-mel frames (log-mel backbones).
            feature_mask: ``(B, F)`` bool, True = real frame.

        Returns:
            EncoderOutput with tokens ``(B, T, D)`` (zeros at padding) and mask ``(B, T)``.
        """
        if self.input_kind == "waveform":
            if input_values is None or attention_mask is None:
                raise ValueError(
                    f"HFAudioEncoder: {type(self.backbone).__name__} takes raw waveforms: pass input_values "
                    "(B, N) and attention_mask (B, N) (audio data with waveform features)"
                )
            states, lengths = self._waveform(input_values, attention_mask.bool())
        else:
            if input_features is None or feature_mask is None:
                raise ValueError(
                    "HFAudioEncoder: Whisper takes log-mel frames: input_features (B, F, M) and feature_mask"
                )
            states, lengths = self._log_mel(input_features, feature_mask.bool())
        frames = cast(Callable[[Tensor], Tensor], self.backbone._get_feat_extract_output_lengths)
        out = frames(lengths).clamp(min=0)  # (B,) real frames
        T = max(1, int(out.max()))
        states = states[:, :T]  # (B, T, hidden)
        mask = torch.arange(T, device=states.device)[None, :] < out[:, None]  # (B, T)
        return EncoderOutput(tokens=zero_masked(self.proj(states), mask), mask=mask)

    def _waveform(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        B, N = x.shape
        if mask.shape != (B, N):
            raise ValueError(f"HFAudioEncoder: attention_mask {tuple(mask.shape)} != input_values {(B, N)}")
        if self.normalize:
            x = _normalize_per_clip(x, mask)
        x = x.masked_fill(~mask, 0.0)
        short = self._min_samples() - N
        if short > 0:  # e.g. a batch of only missing clips: the convolutions need one window
            x = torch.cat([x, x.new_zeros(B, short)], dim=1)
            mask = torch.cat([mask, mask.new_zeros(B, short)], dim=1)
        kwargs = {}
        if self.pass_attention_mask:
            # a row with no real sample attends over its zeros (finite), then is masked out
            kwargs["attention_mask"] = (mask | ~mask.any(dim=1, keepdim=True)).long()
        states = self.backbone(input_values=x, **kwargs).last_hidden_state  # (B, T', hidden)
        return states, mask.sum(dim=1)

    def _log_mel(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        B, F, M = x.shape
        if self.n_mels != M:
            raise ValueError(f"HFAudioEncoder expects input_features (B, F, {self.n_mels}), got {(B, F, M)}")
        if mask.shape != (B, F):
            raise ValueError(f"HFAudioEncoder: feature_mask {tuple(mask.shape)} != (B, F) = {(B, F)}")
        if self._window < F:
            raise ValueError(
                f"HFAudioEncoder: {F} frames exceed Whisper's window of {self._window}: crop the clips"
            )
        # padding = the clip's quietest value; 0 for a clip with no real frame
        low = x.masked_fill(~mask[..., None], torch.inf).amin(dim=(1, 2))  # (B,)
        low = torch.where(torch.isfinite(low), low, torch.zeros_like(low))
        x = torch.where(mask[..., None], x, low[:, None, None])  # (B, F, M)
        pad = low[:, None, None].expand(B, self._window - F, M)
        x = torch.cat([x, pad], dim=1).transpose(1, 2)  # (B, M, window): Whisper is channel-major
        return self.backbone(input_features=x).last_hidden_state, mask.sum(dim=1)


def _normalize_per_clip(x: Tensor, mask: Tensor) -> Tensor:
    """Zero mean, unit variance over each row's real samples, as Hugging Face's
    ``Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm`` does (population variance, eps 1e-7).

    Args:
        x: ``(B, N)`` waveforms.
        mask: ``(B, N)`` bool, True = real sample.
    """
    m = mask.to(x.dtype)
    n = m.sum(dim=1, keepdim=True).clamp(min=1)  # (B, 1); a missing clip has none
    mean = (x * m).sum(dim=1, keepdim=True) / n
    var = ((x - mean).pow(2) * m).sum(dim=1, keepdim=True) / n
    return (x - mean) / torch.sqrt(var + 1e-7)
