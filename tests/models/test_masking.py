"""Mask conversions and masked pooling."""

from __future__ import annotations

import torch

from mmfuse.models.masking import (
    ensure_one_key,
    key_padding_mask,
    masked_mean,
    zero_masked,
)


def test_key_padding_mask_is_true_where_pytorch_must_ignore() -> None:
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert torch.equal(key_padding_mask(mask), torch.tensor([[False, False, True], [False, True, True]]))


def test_ensure_one_key_only_touches_empty_rows() -> None:
    mask = torch.tensor([[False, True, False], [False, False, False], [True, True, True]])
    out = ensure_one_key(mask)
    assert torch.equal(out, torch.tensor([[False, True, False], [True, False, False], [True, True, True]]))
    assert torch.equal(mask[1], torch.zeros(3, dtype=torch.bool))  # input not modified in place


def test_masked_mean_matches_hand_computation_and_ignores_masked_inf() -> None:
    tokens = torch.tensor(
        [
            [[1.0, 2.0], [3.0, 4.0], [float("inf"), float("nan")]],
            [[5.0, -1.0], [100.0, 100.0], [7.0, 3.0]],
            [[float("nan"), 1.0], [2.0, 2.0], [3.0, 3.0]],
        ]
    )
    mask = torch.tensor([[True, True, False], [True, False, True], [False, False, False]])
    expected = torch.tensor([[2.0, 3.0], [6.0, 1.0], [0.0, 0.0]])
    assert torch.equal(masked_mean(tokens, mask), expected)


def test_zero_masked_replaces_nan_and_inf() -> None:
    tokens = torch.tensor([[[float("nan")], [1.0]], [[2.0], [float("inf")]]])
    mask = torch.tensor([[False, True], [True, False]])
    assert torch.equal(zero_masked(tokens, mask), torch.tensor([[[0.0], [1.0]], [[2.0], [0.0]]]))
