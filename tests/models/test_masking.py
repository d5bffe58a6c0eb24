"""Mask conversions, masked pooling and fixed positions."""

from __future__ import annotations

import math

import torch

from mmfuse.models.masking import (
    ensure_one_key,
    key_padding_mask,
    masked_mean,
    sinusoidal_positions,
    sinusoidal_positions_2d,
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


def test_sinusoidal_positions_values() -> None:
    table = sinusoidal_positions(5, 6)
    assert table.shape == (5, 6)
    assert torch.allclose(table[0], torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0]))
    freq1 = 10000.0 ** (-2 / 6)
    expected = torch.tensor([math.sin(3), math.cos(3), math.sin(3 * freq1), math.cos(3 * freq1)])
    assert torch.allclose(table[3, :4], expected, atol=1e-6)
    # odd widths and other dtypes work and agree with the even table
    odd = sinusoidal_positions(5, 5, dtype=torch.float64)
    assert odd.shape == (5, 5) and odd.dtype == torch.float64
    assert torch.allclose(odd[:, :4].float(), sinusoidal_positions(5, 5)[:, :4])


def test_sinusoidal_positions_2d_rows_then_columns() -> None:
    h, w, d = 3, 4, 8
    grid = sinusoidal_positions_2d(h, w, d).reshape(h, w, d)
    assert torch.allclose(grid[:, :, :4], sinusoidal_positions(h, 4)[:, None, :].expand(h, w, 4))
    assert torch.allclose(grid[:, :, 4:], sinusoidal_positions(w, 4)[None, :, :].expand(h, w, 4))
    flat = grid.reshape(h * w, d)
    assert torch.cdist(flat, flat).add(torch.eye(h * w)).min() > 1e-3  # every cell distinct
    assert sinusoidal_positions_2d(2, 3, 7).shape == (6, 7)
