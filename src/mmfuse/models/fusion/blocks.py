"""The attention block the attending fusers share, with the masks converted in the one helper."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmfuse.models.masking import ensure_one_key, key_padding_mask


class AttentionBlock(nn.Module):
    """Post-norm block: queries attend to masked keys, residual + LayerNorm, then feed-forward.

    Self-attention is ``block(x, x, mask)``; cross-attention ``block(x, kv, kv_mask)``. A row with no
    valid key gets a zero attention update (and all-zero weights) instead of NaN.

    Args:
        d_model: width ``D`` of queries, keys and output.
        num_heads: attention heads ``H`` (must divide ``d_model``).
        ff_mult: feed-forward width as a multiple of ``d_model``.
        dropout: dropout on attention weights, residual updates and feed-forward.
    """

    def __init__(self, d_model: int, num_heads: int, ff_mult: int, dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, ff_mult * d_model),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(ff_mult * d_model, d_model),
        )
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, kv: Tensor, kv_mask: Tensor) -> tuple[Tensor, Tensor]:
        """``x (B, T_q, D)`` attends to ``kv (B, T_k, D)`` where ``kv_mask (B, T_k)``.

        Returns the new ``x (B, T_q, D)`` and attention weights ``(B, H, T_q, T_k)``.
        """
        has_key = kv_mask.any(dim=-1)  # (B,)
        update, weights = self.attn(
            x,
            kv,
            kv,
            key_padding_mask=key_padding_mask(ensure_one_key(kv_mask)),
            need_weights=True,
            average_attn_weights=False,
        )  # (B, T_q, D), (B, H, T_q, T_k)
        # rows that attended only to the guard key: drop what they read
        update = torch.where(has_key[:, None, None], update, torch.zeros_like(update))
        weights = torch.where(has_key[:, None, None, None], weights, torch.zeros_like(weights))
        x = self.norm1(x + self.dropout(update))
        x = self.norm2(x + self.dropout(self.ff(x)))
        return x, weights


def check_heads(owner: str, d_model: int, num_heads: int) -> None:
    """Raise ValueError naming ``owner`` unless ``num_heads`` divides ``d_model``."""
    if num_heads < 1 or d_model % num_heads:
        raise ValueError(f"{owner}: num_heads={num_heads} must divide d_model={d_model}")


def modality_to_others(weights: Tensor, sizes: dict[str, int], offset: int = 0) -> dict[str, Tensor]:
    """Cut a map over one concatenated sequence into the ``"m->others"`` maps the W&B callback draws.

    Args:
        weights: ``(B, H, T_q, T_k)`` attention over a sequence holding the modalities' tokens
            back to back in ``sizes`` order, starting at position ``offset`` (e.g. 1 after a [CLS]).
        sizes: modality -> its token count ``T_m``, in sorted modality order.
        offset: position of the first modality token, on both axes.

    Returns:
        ``"m->others"`` -> ``(B, H, T_m, sum of T_others)``: rows of ``m``'s tokens, columns of the
        other modalities' tokens in sorted order (attention to ``m`` itself or to [CLS] left out).
    """
    starts, at = {}, offset
    for m, t in sizes.items():
        starts[m], at = at, at + t
    out = {}
    for m, t in sizes.items():
        rows = weights[:, :, starts[m] : starts[m] + t]  # (B, H, T_m, T_k)
        cols = [rows[..., starts[o] : starts[o] + sizes[o]] for o in sizes if o != m]
        if cols:
            out[f"{m}->others"] = torch.cat(cols, dim=-1)  # (B, H, T_m, sum T_others)
    return out
