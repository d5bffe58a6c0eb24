"""A Transformer text encoder trained from scratch over token ids."""

from __future__ import annotations

import math

from torch import Tensor, nn

from mmfuse.models.masking import ensure_one_key, key_padding_mask, zero_masked
from mmfuse.models.positions import sinusoidal_positions
from mmfuse.types import EncoderOutput


class TextTransformer(nn.Module):
    """Embedding * sqrt(D) + sinusoidal positions, then a pre-norm ``nn.TransformerEncoder``.

    Padding keys are masked, so padding a sequence does not change its real tokens' outputs.
    Rows with no real token (a missing modality) give all-zero tokens, not NaN.

    Args:
        vocab_size: number of token ids (rows of the embedding). Required; in a config leave it
            unset: the ``mmfuse`` command sets it to the text data's learnt vocabulary size.
        d_model: width ``D`` of embeddings, layers and output.
        num_layers: Transformer layers.
        num_heads: attention heads ``H`` (must divide ``d_model``).
        ff_mult: feed-forward width as a multiple of ``d_model``.
        max_length: longest accepted sequence ``L``.
        dropout: dropout in embeddings, attention and feed-forward.
        padding_idx: id of the padding token (its embedding stays zero).
    """

    positions: Tensor  # (max_length, D) buffer

    def __init__(
        self,
        vocab_size: int | None = None,
        d_model: int = 64,
        num_layers: int = 2,
        num_heads: int = 4,
        ff_mult: int = 4,
        max_length: int = 512,
        dropout: float = 0.1,
        padding_idx: int = 0,
    ) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"TextTransformer: num_heads={num_heads} must divide d_model={d_model}")
        if vocab_size is None:
            raise ValueError(
                "TextTransformer: vocab_size is not set (the mmfuse command sets it from the text data)"
            )
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.max_length = max_length
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=padding_idx)
        # a buffer, not a parameter: fixed, moves with .to(), kept out of checkpoints
        self.register_buffer("positions", sinusoidal_positions(max_length, d_model), persistent=False)
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

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> EncoderOutput:
        """Encode a batch of padded token id sequences.

        Args:
            input_ids: ``(B, L)`` long token ids, ``L <= max_length``.
            attention_mask: ``(B, L)`` bool, True = real token.

        Returns:
            EncoderOutput with tokens ``(B, L, D)`` (zeros at padding) and mask = ``attention_mask``.
        """
        L = input_ids.shape[1]
        if self.max_length < L:
            raise ValueError(f"TextTransformer: sequence length {L} exceeds max_length={self.max_length}")
        mask = attention_mask.bool()
        x = self.embed(input_ids) * math.sqrt(self.d_model) + self.positions[:L].to(self.embed.weight.dtype)
        x = self.dropout(x)  # (B, L, D)
        # rows with no real token attend to position 0 (finite garbage), then are zeroed below
        x = self.encoder(x, src_key_padding_mask=key_padding_mask(ensure_one_key(mask)))  # (B, L, D)
        return EncoderOutput(tokens=zero_masked(x, mask), mask=mask)
