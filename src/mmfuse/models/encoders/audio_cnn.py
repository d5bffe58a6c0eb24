"""A 1D convolutional encoder over log-mel frames."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from torch import Tensor, nn

from mmfuse.models.masking import standardized_per_row, zero_masked
from mmfuse.models.positions import sinusoidal_positions
from mmfuse.types import EncoderOutput


class _ConvLayer(nn.Module):
    """Conv1d over time, LayerNorm over channels, GELU; padded frames zeroed on the way out."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_ch, out_ch, kernel_size, padding="same")
        # per-frame LayerNorm: BatchNorm would pool statistics over padded frames
        self.norm = nn.LayerNorm(out_ch)
        self.act = nn.GELU()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        h = self.conv(x.transpose(1, 2)).transpose(1, 2)  # (B, F, C_out)
        h = self.dropout(self.act(self.norm(h)))
        # the norm's bias makes padded frames nonzero; zero them so the next conv sees the
        # same zeros it would see past the end of an unpadded sequence
        return zero_masked(h, mask)


class AudioCNN(nn.Module):
    """Stacked 1D convolutions over time with mel bins as channels; each frame is a token.

    No time downsampling, so token ``t`` is frame ``t``. Padded frames are zeroed before the
    first conv and after every layer, so a padded clip gives exactly the same real-frame outputs
    as the unpadded clip, whatever values the padding held.

    Args:
        n_mels: mel bins ``M`` (input channels).
        d_model: output width ``D``.
        channels: output channels of each conv layer.
        kernel_size: conv kernel size over frames (odd keeps 'same' padding symmetric).
        dropout: dropout after each layer.
        normalize: standardise each clip's log-mel frames first (each mel bin's mean over the clip
            subtracted, divided by the clip's standard deviation, padding left out): a recording's
            loudness and microphone colouring no longer change what the convolutions see. Worth it
            for real recordings; on the real-digits data it lifted the audio-only test accuracy
            (docs/results-real-data.md).
    """

    #: what it reads, checked against the audio data's ``features`` before training starts
    input_kind = "log_mel"

    def __init__(
        self,
        n_mels: int = 40,
        d_model: int = 64,
        channels: Sequence[int] = (64, 64),
        kernel_size: int = 5,
        dropout: float = 0.0,
        normalize: bool = False,
    ) -> None:
        super().__init__()
        self.n_mels = n_mels
        self.normalize = normalize
        self.d_model = d_model
        dims = [n_mels, *channels]
        self.layers = nn.ModuleList(
            _ConvLayer(i, o, kernel_size, dropout) for i, o in itertools.pairwise(dims)
        )
        self.proj = nn.Linear(dims[-1], d_model)

    def forward(self, input_features: Tensor, feature_mask: Tensor) -> EncoderOutput:
        """Encode a batch of padded log-mel spectrograms.

        Args:
            input_features: ``(B, F, M)`` float log-mel frames.
            feature_mask: ``(B, F)`` bool, True = real frame.

        Returns:
            EncoderOutput with tokens ``(B, F, D)`` (zeros at padding) and mask = ``feature_mask``.
        """
        B, F, M = input_features.shape
        if self.n_mels != M:
            raise ValueError(f"AudioCNN expects input_features (B, F, {self.n_mels}), got {(B, F, M)}")
        mask = feature_mask.bool()
        x = (
            standardized_per_row(input_features, mask)
            if self.normalize
            else zero_masked(input_features, mask)
        )
        for layer in self.layers:
            x = layer(x, mask)  # (B, F, C)
        tokens = self.proj(x) + sinusoidal_positions(F, self.d_model, x.device, x.dtype)  # (B, F, D)
        return EncoderOutput(tokens=zero_masked(tokens, mask), mask=mask)
