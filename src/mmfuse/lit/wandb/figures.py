"""Labelled figures for W&B: the confusion matrix and attention maps, drawn with matplotlib.

matplotlib is imported inside the functions (``import mmfuse`` stays light) and drawn on its Agg
canvas directly, never through ``pyplot``: no global figure state, no window, no backend switch, safe
in DataLoader workers and under DDP. Every figure is returned as a ``matplotlib.figure.Figure`` (so
that tests can read its labels) and turned into pixels by :func:`figure_pixels`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from torch import Tensor

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.cm import ScalarMappable
    from matplotlib.figure import Figure

_MAX_TICKS = 40  # more tick labels than this overlap: label every n-th token instead
_MAX_COUNTS = 30  # above this many classes the counts no longer fit in their cells
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(text: str) -> str:
    """``text`` as a shell-safe W&B key part or file name: runs of anything but letters, digits,
    ``_``, ``.`` and ``-`` become one ``_`` (``"my audio"`` -> ``"my_audio"``)."""
    return _UNSAFE.sub("_", text).strip("_") or "_"


def confusion_figure(
    counts: np.ndarray | Tensor, names: Sequence[str], title: str = "Confusion matrix"
) -> Figure:
    """A ``(K, K)`` count matrix (rows true class, columns predicted) as a labelled heatmap.

    The class names label both axes in the given order, each cell shows its count (up to
    30 classes), and a colour bar gives the scale. The title adds the sample count and accuracy.
    """
    values = _numpy(counts).astype(np.int64)
    K = len(names)
    if values.shape != (K, K):
        raise ValueError(f"counts has shape {values.shape}, expected ({K}, {K}) for classes {list(names)}")
    total = int(values.sum())
    correct = int(np.trace(values))
    side = min(16.0, 3.0 + 0.45 * K)  # inches: room for the names, not a wall of pixels
    fig, ax = _figure(side + 1.2, side)
    image = ax.imshow(values, cmap="Blues", vmin=0, interpolation="nearest")
    _colorbar(fig, ax, image, "samples")
    ticks, labels = list(range(K)), [_plain(n) for n in names]
    size = min(10.0, 800 / K)  # points: the names still fit side by side with many classes
    ax.set_xticks(
        ticks, labels, rotation=45 if K > 4 else 0, ha="right" if K > 4 else "center", fontsize=size
    )
    ax.set_yticks(ticks, labels, fontsize=size)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = f", accuracy {correct / total:.1%}" if total else ""
    ax.set_title(_plain(f"{title} ({total} samples{accuracy})"))
    if K <= _MAX_COUNTS:
        dark = values.max() * 0.5 if values.max() > 0 else 1
        for t in range(K):
            for p in range(K):
                colour = "white" if values[t, p] > dark else "black"
                ax.text(p, t, str(values[t, p]), ha="center", va="center", color=colour, fontsize=9)
    fig.tight_layout()
    return fig


def attention_figure(
    weights: np.ndarray | Tensor,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    row_title: str,
    col_title: str,
    title: str,
) -> Figure:
    """A ``(R, C)`` attention matrix (query tokens as rows, key tokens as columns) as a heatmap.

    Rows and columns are labelled by ``row_labels`` / ``col_labels`` (text tokens or positions;
    every n-th one where there are too many to read); a colour bar gives the weights' scale.
    Pass only real tokens: padding is the caller's to leave out.
    """
    values = _numpy(weights).astype(np.float64)
    R, C = values.shape
    if (len(row_labels), len(col_labels)) != (R, C):
        raise ValueError(f"{len(row_labels)} row and {len(col_labels)} column labels for a {R} x {C} matrix")
    fig, ax = _figure(7.5, 6.0)  # one size for every map: the panel's images line up
    image = ax.imshow(values, cmap="viridis", vmin=0, aspect="auto", interpolation="nearest")
    _colorbar(fig, ax, image, "attention weight")
    _ticks(ax, "x", col_labels)
    _ticks(ax, "y", row_labels)
    ax.set_xlabel(_plain(col_title))
    ax.set_ylabel(_plain(row_title))
    ax.set_title(_plain(title), fontsize=10)
    fig.tight_layout()
    return fig


def figure_pixels(fig: Figure) -> np.ndarray:
    """Render a figure to an ``(H, W, 3)`` uint8 RGB array with the Agg renderer."""
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())  # type: ignore[attr-defined]  # (H, W, 4)
    return np.ascontiguousarray(rgba[..., :3])


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas: the Agg renderer, no pyplot
    return fig, fig.add_subplot()


def _colorbar(fig: Figure, ax: Axes, image: ScalarMappable, label: str) -> None:
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label(label)


def _ticks(ax: Axes, axis: str, labels: Sequence[str]) -> None:
    step = max(1, -(-len(labels) // _MAX_TICKS))  # ceil: at most _MAX_TICKS labels
    positions = list(range(0, len(labels), step))
    shown = [_plain(labels[i]) for i in positions]
    if axis == "x":
        ax.set_xticks(positions, shown, rotation=90, fontsize=8)
    else:
        ax.set_yticks(positions, shown, fontsize=8)


def _plain(text: str) -> str:
    """Text shown as typed: matplotlib reads text between two ``$`` as a formula (and may fail on it)."""
    return text.replace("$", r"\$")


def _numpy(x: np.ndarray | Tensor) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
