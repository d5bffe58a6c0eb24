"""A pretrained Hugging Face vision backbone (ViT-like or CNN) whose patches or grid cells are the tokens."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mmfuse.models.encoders.hf_common import HFEncoderBase, backbone_width, preprocessor_dict
from mmfuse.types import EncoderOutput

_DEFAULT_STAT = 0.5  # what ImageDataModule uses by default, and ViT's own processor


class HFImageEncoder(HFEncoderBase):
    """``transformers.AutoModel`` over images; its ``last_hidden_state`` becomes the tokens.

    - ViT-like backbones (ViT, DeiT, BEiT, Swin, DINOv2, ...) give ``(B, T, hidden)``: every token,
      the class token(s) included, is kept.
    - CNN backbones (ResNet, ConvNeXt, ...) give ``(B, C, h, w)``: the grid is flattened row-major
      to ``h * w`` tokens.

    Tokens are projected to ``D``; every token is real (mask all True). Position information is the
    backbone's own.

    Normalisation must match the pretraining: the ``ImageDataModule`` normalises with its own
    ``mean``/``std`` (default 0.5, i.e. ``[-1, 1]``), so set them to :attr:`image_mean` /
    :attr:`image_std`, which are read from the backbone's image processor config
    (``preprocessor_config.json``; ImageNet statistics for ResNet and ConvNeXt, 0.5 for ViT) and
    fall back to 0.5 where it has none. Set the data's ``size`` to :attr:`image_size` where that is
    not None: ViT-likes only take the size their position embeddings were trained at, while CNNs
    take any size (``image_size`` None).

    Args:
        model_name_or_path: a hub id (``google/vit-base-patch16-224-in21k``) or a local folder.
        d_model: output width ``D``.
        freeze: freeze the backbone (no gradients, kept in eval mode); the projection still trains.
        trust_remote_code: allow the model's own code from the hub. Off unless set in the config.
        gradient_checkpointing: recompute the backbone's activations in backward to save memory.
        config_only: random weights of the model's architecture, no pretrained weights loaded.

    Attributes:
        in_channels: image channels ``C`` the backbone takes (``config.num_channels``).
        image_mean: per-channel mean the backbone was pretrained with (data's ``mean``).
        image_std: per-channel std the backbone was pretrained with (data's ``std``).
        image_size: the side the backbone requires (``config.image_size``), None if any size works.
    """

    def __init__(
        self,
        model_name_or_path: str,
        d_model: int = 64,
        freeze: bool = False,
        trust_remote_code: bool = False,
        gradient_checkpointing: bool = False,
        config_only: bool = False,
    ) -> None:
        super().__init__(model_name_or_path, freeze, trust_remote_code, gradient_checkpointing, config_only)
        config = self.backbone.config
        self.d_model = d_model
        self.in_channels = int(getattr(config, "num_channels", 3))
        self.backbone_dim = backbone_width(config, "HFImageEncoder")
        size = getattr(config, "image_size", None)
        self.image_size: int | None = int(size) if isinstance(size, int) else None
        processor = preprocessor_dict(model_name_or_path, trust_remote_code)
        self.image_mean = per_channel(processor.get("image_mean"), self.in_channels)
        self.image_std = per_channel(processor.get("image_std"), self.in_channels)
        self.proj = nn.Linear(self.backbone_dim, d_model)

    def forward(self, pixel_values: Tensor) -> EncoderOutput:
        """Encode a batch of images.

        Args:
            pixel_values: ``(B, C, H, W)`` float images, normalised with :attr:`image_mean` and
                :attr:`image_std`.

        Returns:
            EncoderOutput with tokens ``(B, T, D)`` (``T`` patches or ``h * w`` grid cells) and
            mask ``(B, T)`` all True.
        """
        if pixel_values.dim() != 4 or pixel_values.shape[1] != self.in_channels:
            raise ValueError(
                f"HFImageEncoder expects pixel_values (B, {self.in_channels}, H, W), "
                f"got {tuple(pixel_values.shape)}"
            )
        states = self.backbone(pixel_values=pixel_values).last_hidden_state
        if states.dim() == 4:  # a CNN's grid (B, C, h, w)
            states = states.flatten(2).transpose(1, 2)  # (B, h*w, C)
        B, T, C = states.shape
        if self.backbone_dim != C:
            raise ValueError(f"HFImageEncoder: backbone gave width {C}, expected {self.backbone_dim}")
        tokens = self.proj(states)  # (B, T, D)
        mask = torch.ones(B, T, dtype=torch.bool, device=tokens.device)
        return EncoderOutput(tokens=tokens, mask=mask)


def per_channel(value: float | Sequence[float] | None, channels: int) -> list[float]:
    """A processor's mean/std (a number or one per channel) as floats; 0.5 per channel if absent."""
    if value is None:
        return [_DEFAULT_STAT] * channels
    values = [float(value)] if isinstance(value, (int, float)) else [float(v) for v in value]
    return values * channels if len(values) == 1 else values
