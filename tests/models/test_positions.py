"""Fixed sine/cosine positions: values, odd widths, 2D grids."""

from __future__ import annotations

import math

import torch

from mmfuse.models.positions import sinusoidal_positions, sinusoidal_positions_2d


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
