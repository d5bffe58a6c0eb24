"""A small convolutional image encoder whose spatial grid becomes the token sequence."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mmfuse.models.positions import sinusoidal_positions_2d
from mmfuse.types import EncoderOutput


class ImageCNN(nn.Module):
    """Stages of conv3x3 + BatchNorm + ReLU + MaxPool2, then a 1x1 conv to ``d_model``.

    Each stage halves the spatial size, so an ``H x W`` image gives ``(H / 2^S) * (W / 2^S)``
    tokens for ``S = len(channels)`` stages. Tokens carry fixed 2D sinusoidal positions, so any
    image size works. Every token is real (mask all True).

    Note: in training mode BatchNorm statistics include every image in the batch, also
    placeholder images of samples whose image is missing.

    Args:
        in_channels: image channels ``C`` (3 for RGB, 1 for grayscale).
        d_model: output width ``D``.
        channels: output channels of each conv stage.
        dropout: dropout on the output tokens.
    """

    def __init__(
        self,
        in_channels: int = 3,
        d_model: int = 64,
        channels: Sequence[int] = (32, 64),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not channels:
            raise ValueError("ImageCNN: `channels` needs at least one stage")
        self.in_channels = in_channels
        self.d_model = d_model
        stages: list[nn.Module] = []
        prev = in_channels
        for ch in channels:
            # no conv bias: BatchNorm's shift replaces it
            stages += [
                nn.Conv2d(prev, ch, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(ch),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            prev = ch
        self.stages = nn.Sequential(*stages)
        self.proj = nn.Conv2d(prev, d_model, kernel_size=1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, pixel_values: Tensor) -> EncoderOutput:
        """Encode a batch of images.

        Args:
            pixel_values: ``(B, C, H, W)`` float images.

        Returns:
            EncoderOutput with tokens ``(B, h*w, D)`` and mask ``(B, h*w)`` all True.
        """
        if pixel_values.dim() != 4 or pixel_values.shape[1] != self.in_channels:
            raise ValueError(
                f"ImageCNN expects pixel_values (B, {self.in_channels}, H, W), "
                f"got {tuple(pixel_values.shape)}"
            )
        x = self.proj(self.stages(pixel_values))  # (B, D, h, w)
        B, D, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (B, h*w, D)
        tokens = tokens + sinusoidal_positions_2d(h, w, D, device=x.device, dtype=x.dtype)
        tokens = self.dropout(tokens)
        mask = torch.ones(B, h * w, dtype=torch.bool, device=x.device)
        return EncoderOutput(tokens=tokens, mask=mask)
