"""Labelled figures: the confusion matrix and attention maps carry names, counts, axes and a colour bar."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmfuse.lit.wandb.figures import attention_figure, confusion_figure, figure_pixels, safe_name

CLASSES = ["zero", "one", "two", "three"]


def _texts(fig: object) -> set[str]:
    return {t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text"))}  # type: ignore[attr-defined]


def _save(pixels: np.ndarray, path: Path) -> None:
    Image.fromarray(pixels).save(path)


def test_confusion_figure_has_class_names_counts_axes_and_colour_bar(tmp_path: Path) -> None:
    counts = torch.tensor([[5, 1, 0, 0], [2, 7, 1, 0], [0, 0, 9, 3], [0, 0, 4, 12]])
    fig = confusion_figure(counts, CLASSES, title="Test confusion matrix")
    ax, bar = fig.axes  # the matrix and its colour bar
    # the class names on both axes, in the given order (not alphabetical)
    assert [t.get_text() for t in ax.get_xticklabels()] == CLASSES
    assert [t.get_text() for t in ax.get_yticklabels()] == CLASSES
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert bar.get_ylabel() == "samples"
    assert "44 samples, accuracy 75.0%" in ax.get_title()
    # every count in its cell: (row true, column predicted)
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert cells == {(t, p): str(int(counts[t, p])) for t in range(4) for p in range(4)}
    pixels = figure_pixels(fig)
    assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3
    assert min(pixels.shape[:2]) >= 300 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20
    _save(pixels, tmp_path / "confusion_matrix.png")  # look at it: pytest --basetemp=<dir>
    with pytest.raises(ValueError, match="expected \\(3, 3\\)"):
        confusion_figure(counts, CLASSES[:3])


def test_attention_figure_labels_tokens_and_has_a_colour_bar(tmp_path: Path) -> None:
    words = ["the", "siren", "was", "loud", "near", "the", "bridge"]
    weights = torch.softmax(torch.randn(16, 7, generator=torch.Generator().manual_seed(0)), dim=-1)
    positions = [str(i) for i in range(16)]
    fig = attention_figure(weights, positions, words, "image token positions", "text tokens", "s1 (two)")
    ax, bar = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == words
    assert [t.get_text() for t in ax.get_yticklabels()] == positions
    assert ax.get_xlabel() == "text tokens" and ax.get_ylabel() == "image token positions"
    assert bar.get_ylabel() == "attention weight" and ax.get_title() == "s1 (two)"
    pixels = figure_pixels(fig)
    assert pixels.shape == (600, 750, 3)  # one size for every map
    _save(pixels, tmp_path / "attention.png")
    # long sequences: at most 40 labels, every n-th token, still the right ones
    many = attention_figure(np.ones((100, 3)), [f"t{i}" for i in range(100)], list("abc"), "q", "k", "")
    shown = [t.get_text() for t in many.axes[0].get_yticklabels()]
    assert len(shown) <= 40 and shown[:3] == ["t0", "t3", "t6"]
    # text shown as typed: `$...$` is not read as a formula (an invalid one would fail to draw)
    dollars = attention_figure(np.ones((1, 2)), ["$\\frac$"], ["$5", "x$"], "q", "k", "costs $1 or $2")
    figure_pixels(dollars)
    assert [t.get_text() for t in dollars.axes[0].get_xticklabels()] == ["\\$5", "x\\$"]
    with pytest.raises(ValueError, match="labels"):
        attention_figure(weights, positions[:3], words, "q", "k", "")


def test_safe_names() -> None:
    assert safe_name("image>text") == "image_text"
    assert safe_name("my audio (left)") == "my_audio_left"
    assert safe_name("a.b-c_d") == "a.b-c_d" and safe_name("<>") == "_"
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", safe_name(s)) for s in ["x y", "$(rm)", "ü;|&"])


def test_figures_import_matplotlib_lazily_and_never_pyplot() -> None:
    # importing the module costs nothing; drawing needs no pyplot, which would pick an interactive
    # backend and keep every figure alive in a global registry. A fresh interpreter: in this session
    # torchmetrics has imported pyplot already (it does whenever matplotlib is installed).
    code = (
        "import sys\n"
        "from mmfuse.lit.wandb import figures\n"
        "assert 'matplotlib' not in sys.modules, 'imported at module level'\n"
        "figures.figure_pixels(figures.confusion_figure([[1, 0], [0, 1]], ['a', 'b']))\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_attention_maps_label_text_tokens_and_other_positions() -> None:
    from mmfuse.lit.wandb.attention_maps import _axis_title, _token_labels
    from mmfuse.lit.wandb.val_samples import FixedSamples
    from mmfuse.types import Batch

    batch = Batch(inputs={}, present={}, targets={}, ids=["a", "b"])
    samples = FixedSamples(batch, ["text", "image"], [{}, {}], {"text": [["hi", "there"], ["x"]]})
    real = torch.tensor([True, True, False])  # (T,): the padded third token is not shown
    assert _token_labels(samples, "text", 0, real) == ["hi", "there"]
    # an encoder that does not keep one token per text token: positions rather than wrong words
    assert _token_labels(samples, "text", 1, real) == ["0", "1"]
    assert _token_labels(samples, "image", 0, torch.tensor([True, False, True])) == ["0", "2"]
    assert _axis_title(samples, "text", "keys") == "text tokens (keys)"
    assert _axis_title(samples, "image", "queries") == "image token positions (queries)"
