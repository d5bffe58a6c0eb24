"""A Vision Transformer trained from scratch: image patches are the tokens (Dosovitskiy et al., 2021)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmfuse.models.positions import sinusoidal_positions_2d
from mmfuse.types import EncoderOutput


class ImageViT(nn.Module):
    """Non-overlapping ``patch_size`` x ``patch_size`` patches, linearly embedded (a strided conv),
    plus fixed 2D sinusoidal positions, through a pre-norm ``nn.TransformerEncoder``.

    An ``H x W`` image gives ``(H / P) * (W / P)`` tokens in row-major order; any size divisible by
    ``patch_size`` works (fixed positions, no learnt table tied to one size). No [CLS] token: the
    fusers pool the patch tokens themselves. Every token is real (mask all True). From scratch, a
    ViT wants more data or augmentation than a CNN; ``HFImageEncoder`` loads pretrained ones.

    Args:
        in_channels: image channels ``C`` (3 for RGB, 1 for grayscale).
        d_model: width ``D`` of patch embeddings, layers and output.
        patch_size: patch side ``P`` in pixels.
        num_layers: Transformer layers.
        num_heads: attention heads ``H`` (must divide ``d_model``).
        ff_mult: feed-forward width as a multiple of ``d_model``.
        dropout: dropout in embeddings, attention and feed-forward.
    """

    def __init__(
        self,
        in_channels: int = 3,
        d_model: int = 64,
        patch_size: int = 4,
        num_layers: int = 2,
        num_heads: int = 4,
        ff_mult: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"ImageViT: num_heads={num_heads} must divide d_model={d_model}")
        self.in_channels = in_channels
        self.d_model = d_model
        self.patch_size = patch_size
        self.patches = nn.Conv2d(in_channels, d_model, kernel_size=patch_size, stride=patch_size)
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
        # pre-norm layers leave the residual stream unnormalized: close with a LayerNorm
        self.encoder = nn.TransformerEncoder(
            layer, num_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False
        )

    def forward(self, pixel_values: Tensor) -> EncoderOutput:
        """Encode a batch of images.

        Args:
            pixel_values: ``(B, C, H, W)`` float images, ``H`` and ``W`` divisible by ``patch_size``.

        Returns:
            EncoderOutput with tokens ``(B, h*w, D)``, ``h = H / P``, ``w = W / P``, and mask all True.
        """
        if pixel_values.dim() != 4 or pixel_values.shape[1] != self.in_channels:
            raise ValueError(
                f"ImageViT expects pixel_values (B, {self.in_channels}, H, W), "
                f"got {tuple(pixel_values.shape)}"
            )
        H, W = pixel_values.shape[-2:]
        if H % self.patch_size or W % self.patch_size:
            raise ValueError(
                f"ImageViT: image size {H}x{W} is not divisible by patch_size={self.patch_size} "
                "(set the image data's size to a multiple of it)"
            )
        x = self.patches(pixel_values)  # (B, D, h, w)
        B, D, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (B, h*w, D)
        tokens = self.dropout(tokens + sinusoidal_positions_2d(h, w, D, device=x.device, dtype=x.dtype))
        tokens = self.encoder(tokens)  # (B, h*w, D)
        mask = torch.ones(B, h * w, dtype=torch.bool, device=x.device)
        return EncoderOutput(tokens=tokens, mask=mask)
