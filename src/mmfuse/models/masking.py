"""Mask conventions and masked pooling: the one place masks are converted.

Our masks are ``bool`` with **True = real token / present**. PyTorch disagrees with itself
(``key_padding_mask``: True = ignore; SDPA bool mask: True = attend), so every conversion for
an attention call goes through :func:`key_padding_mask` here and nowhere else.
"""

from __future__ import annotations

import torch
from torch import Tensor


def key_padding_mask(mask: Tensor) -> Tensor:
    """Our mask -> the ``key_padding_mask`` of ``nn.MultiheadAttention`` / ``nn.TransformerEncoder``.

    Args:
        mask: ``(B, T)`` bool, True = real token.

    Returns:
        ``(B, T)`` bool, True = ignore this key.
    """
    return ~mask


def ensure_one_key(mask: Tensor) -> Tensor:
    """Unmask position 0 in rows that have no real key, so attention does not softmax over nothing.

    A row with every key masked gives NaN (softmax over an empty set). Callers attend with the
    returned mask, then zero the result for rows where ``mask.any(-1)`` is False.

    Args:
        mask: ``(B, T)`` bool, True = real key, ``T >= 1``.

    Returns:
        ``(B, T)`` bool, equal to ``mask`` except ``[b, 0] = True`` where row ``b`` was all False.
    """
    empty = ~mask.any(dim=-1)  # (B,)
    first = torch.zeros_like(mask)
    first[:, 0] = True
    return mask | (first & empty[:, None])


def zero_masked(tokens: Tensor, mask: Tensor) -> Tensor:
    """Set the features of masked tokens to exactly zero (also where they were inf/NaN).

    Args:
        tokens: ``(B, T, D)`` features.
        mask: ``(B, T)`` bool, True = real token.

    Returns:
        ``(B, T, D)`` with masked positions zero.
    """
    # masked_fill, not multiply: 0 * inf would still be NaN
    return tokens.masked_fill(~mask[..., None], 0.0)


def masked_mean(tokens: Tensor, mask: Tensor) -> Tensor:
    """Mean of the real tokens of each row; zeros for a row with no real token.

    Args:
        tokens: ``(B, T, D)`` features; values at masked positions are ignored (even inf/NaN).
        mask: ``(B, T)`` bool, True = real token.

    Returns:
        ``(B, D)`` per-row mean over real tokens.
    """
    kept = zero_masked(tokens, mask)  # (B, T, D)
    count = mask.sum(dim=1, keepdim=True).clamp(min=1).to(tokens.dtype)  # (B, 1)
    return kept.sum(dim=1) / count


def standardized_per_row(features: Tensor, mask: Tensor, eps: float = 1e-3) -> Tensor:
    """Per row, each feature's mean over the real positions subtracted, then everything divided by
    the row's standard deviation (over its real positions and all features); zeros at padding.

    Applied to log-mel frames this is per-clip mean and variance normalisation: a louder or quieter
    recording (a constant added to every log-mel value) and a microphone's colouring (a constant per
    mel bin) give the same output.

    Args:
        features: ``(B, T, F)``; values at masked positions are ignored (even inf/NaN).
        mask: ``(B, T)`` bool, True = real position.
        eps: the smallest standard deviation divided by (a constant row stays zeros).

    Returns:
        ``(B, T, F)``.
    """
    x = zero_masked(features, mask)  # (B, T, F)
    count = mask.sum(dim=1, keepdim=True).clamp(min=1).to(x.dtype)[..., None]  # (B, 1, 1)
    centred = zero_masked(x - x.sum(dim=1, keepdim=True) / count, mask)  # (B, T, F)
    std = (centred.square().sum(dim=(1, 2), keepdim=True) / (count * x.shape[-1])).sqrt()  # (B, 1, 1)
    return centred / std.clamp(min=eps)
