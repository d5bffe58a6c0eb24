"""A recurrent (GRU/LSTM) text encoder over token ids."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mmfuse.models.masking import zero_masked
from mmfuse.types import EncoderOutput


class TextRNN(nn.Module):
    """Embedding + (bi)GRU/LSTM, per-token outputs projected to ``d_model``.

    Sequences are packed, so padding never reaches the recurrence: the backward direction starts
    at each row's last real token, and a padded row gives the same real-token outputs as an
    unpadded one. Rows with no real token (a missing modality) give all-zero tokens.

    Args:
        vocab_size: number of token ids (rows of the embedding). Required; in a config leave it
            unset: the ``mmfuse`` command sets it to the text data's learnt vocabulary size.
        d_model: output width ``D``.
        embed_dim: embedding width.
        hidden_size: RNN hidden width per direction.
        num_layers: stacked RNN layers.
        cell: ``"gru"`` or ``"lstm"``.
        bidirectional: run a backward direction too.
        dropout: dropout on embeddings, between RNN layers and on outputs.
        padding_idx: id of the padding token (its embedding stays zero).
    """

    def __init__(
        self,
        vocab_size: int | None = None,
        d_model: int = 64,
        embed_dim: int = 64,
        hidden_size: int = 64,
        num_layers: int = 1,
        cell: Literal["gru", "lstm"] = "gru",
        bidirectional: bool = True,
        dropout: float = 0.0,
        padding_idx: int = 0,
    ) -> None:
        super().__init__()
        if cell not in ("gru", "lstm"):
            raise ValueError(f"TextRNN: cell must be 'gru' or 'lstm', got {cell!r}")
        if vocab_size is None:
            raise ValueError(
                "TextRNN: vocab_size is not set (the mmfuse command sets it from the text data's vocabulary)"
            )
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=padding_idx)
        rnn_cls = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = rnn_cls(
            embed_dim,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            # PyTorch warns when inter-layer dropout is set on a single layer
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.proj = nn.Linear(hidden_size * (2 if bidirectional else 1), d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> EncoderOutput:
        """Encode a batch of right-padded token id sequences.

        Args:
            input_ids: ``(B, L)`` long token ids.
            attention_mask: ``(B, L)`` bool, True = real token; real tokens must come first.

        Returns:
            EncoderOutput with tokens ``(B, L, D)`` (zeros at padding) and mask = ``attention_mask``.
        """
        L = input_ids.shape[1]
        mask = attention_mask.bool()
        lengths = mask.sum(dim=1)  # (B,)
        if not torch.equal(mask, torch.arange(L, device=mask.device)[None, :] < lengths[:, None]):
            raise ValueError("TextRNN expects right-padded input: attention_mask must be True then False")
        x = self.dropout(self.embed(input_ids))  # (B, L, E)
        # packing rejects length 0; such rows run one step and are zeroed below
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        hidden, _ = pad_packed_sequence(out, batch_first=True, total_length=L)  # (B, L, dirs*hidden)
        tokens = self.proj(self.dropout(hidden))  # (B, L, D)
        tokens = zero_masked(tokens, mask)
        return EncoderOutput(tokens=tokens, mask=mask)
