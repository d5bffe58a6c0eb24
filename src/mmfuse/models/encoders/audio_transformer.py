"""An AST-style audio transformer over log-mel patches, trained from scratch (Gong et al., 2021)."""

from __future__ import annotations

import math

import torch.nn.functional as F_
from torch import Tensor, nn

from mmfuse.models.masking import ensure_one_key, key_padding_mask, zero_masked
from mmfuse.models.positions import sinusoidal_positions_2d
from mmfuse.types import EncoderOutput


class AudioTransformer(nn.Module):
    """The log-mel spectrogram cut into ``patch_frames`` x ``patch_mels`` patches, linearly embedded,
    plus fixed 2D (time, frequency) positions, through a pre-norm ``nn.TransformerEncoder``.

    Like the Audio Spectrogram Transformer, but with non-overlapping patches (AST's overlap of 6
    would let a patch straddle real and padded frames in two places) and fixed positions, so any
    clip length works. Tokens are time-major: ``F / patch_frames`` time steps of
    ``M / patch_mels`` frequency bands each, so padding a clip only appends masked tokens. A patch
    is real when any of its frames is; padded frames are zeroed before patching, so padding never
    changes a real token. A clip with no real frame (missing audio) gives all-zero tokens.

    Args:
        n_mels: mel bins ``M``; must be divisible by ``patch_mels``.
        d_model: width ``D`` of patch embeddings, layers and output.
        patch_frames: frames per patch (time).
        patch_mels: mel bins per patch (frequency); ``n_mels`` for one token per time step.
        num_layers: Transformer layers.
        num_heads: attention heads ``H`` (must divide ``d_model``).
        ff_mult: feed-forward width as a multiple of ``d_model``.
        dropout: dropout in embeddings, attention and feed-forward.
    """

    #: what it reads, checked against the audio data's ``features`` before training starts
    input_kind = "log_mel"

    def __init__(
        self,
        n_mels: int = 40,
        d_model: int = 64,
        patch_frames: int = 4,
        patch_mels: int = 8,
        num_layers: int = 2,
        num_heads: int = 4,
        ff_mult: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"AudioTransformer: num_heads={num_heads} must divide d_model={d_model}")
        if n_mels % patch_mels:
            raise ValueError(f"AudioTransformer: patch_mels={patch_mels} must divide n_mels={n_mels}")
        self.n_mels = n_mels
        self.d_model = d_model
        self.patch_frames = patch_frames
        self.patch_mels = patch_mels
        self.patches = nn.Conv2d(
            1, d_model, kernel_size=(patch_frames, patch_mels), stride=(patch_frames, patch_mels)
        )
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            d_model,
            num_heads,
            dim_feedforward=ff_mult * d_model,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, num_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False
        )

    def forward(self, input_features: Tensor, feature_mask: Tensor) -> EncoderOutput:
        """Encode a batch of padded log-mel spectrograms.

        Args:
            input_features: ``(B, F, M)`` float log-mel frames.
            feature_mask: ``(B, F)`` bool, True = real frame.

        Returns:
            EncoderOutput with tokens ``(B, t * f, D)``, ``t = ceil(F / patch_frames)``,
            ``f = M / patch_mels`` (zeros at padding), and mask ``(B, t * f)``.
        """
        B, F, M = input_features.shape
        if self.n_mels != M:
            raise ValueError(
                f"AudioTransformer expects input_features (B, F, {self.n_mels}), got {(B, F, M)}"
            )
        t = math.ceil(F / self.patch_frames)
        pad = t * self.patch_frames - F
        # the last patch's missing frames are padding, like the batch's own padding
        frames = F_.pad(feature_mask.bool(), (0, pad), value=False)  # (B, t * P_t)
        x = F_.pad(zero_masked(input_features, feature_mask.bool()), (0, 0, 0, pad))  # (B, t * P_t, M)
        x = self.patches(x[:, None])  # (B, D, t, f)
        f = x.shape[-1]
        tokens = x.flatten(2).transpose(1, 2)  # (B, t * f, D), time-major
        tokens = tokens + sinusoidal_positions_2d(t, f, self.d_model, device=x.device, dtype=x.dtype)
        mask = frames.reshape(B, t, self.patch_frames).any(dim=-1)  # (B, t)
        mask = mask[:, :, None].expand(B, t, f).reshape(B, t * f)  # (B, t * f)
        # rows with no real patch attend to position 0 (finite garbage), then are zeroed below
        tokens = self.encoder(
            self.dropout(tokens), src_key_padding_mask=key_padding_mask(ensure_one_key(mask))
        )
        return EncoderOutput(tokens=zero_masked(tokens, mask), mask=mask)
