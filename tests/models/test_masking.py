"""Mask conversions and masked pooling."""

from __future__ import annotations

import torch

from mmfuse.models.masking import (
    ensure_one_key,
    key_padding_mask,
    masked_mean,
    standardized_per_row,
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


def test_standardized_per_row_matches_hand_computation_and_ignores_padding() -> None:
    x = torch.tensor([[[1.0, 10.0], [3.0, 14.0], [float("nan"), 99.0]]])  # (1, 3, 2), last row padding
    mask = torch.tensor([[True, True, False]])
    out = standardized_per_row(x, mask)
    # bin means 2 and 12 -> centred [[-1, -2], [1, 2]]; std over the 4 values sqrt(10/4)
    expected = torch.tensor([[[-1.0, -2.0], [1.0, 2.0], [0.0, 0.0]]]) / (10 / 4) ** 0.5
    torch.testing.assert_close(out, expected)
    # a constant row stays zeros, not NaN
    assert torch.equal(
        standardized_per_row(torch.full((1, 3, 2), 5.0), torch.ones(1, 3, dtype=torch.bool)),
        torch.zeros(1, 3, 2),
    )
