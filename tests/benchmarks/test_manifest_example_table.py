"""benchmarks/manifest_example_table.py's ``product`` row: the single-modality models' class
probabilities multiplied, scored from their predictions.csv files (the fits come from the script)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


def _predictions(path: Path, rows: list[tuple[str, str, list[float]]]) -> Path:
    """A predictions.csv as ``mmfuse predict`` writes it, classes a, b, c."""
    lines = ["id,prediction,label,correct,prob_a,prob_b,prob_c"]
    for id_, label, probs in rows:
        predicted = "abc"[max(range(3), key=probs.__getitem__)]
        lines.append(f"{id_},{predicted},{label},{int(predicted == label)},{','.join(map(str, probs))}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_product_multiplies_probabilities_and_scores_every_id_once(
    load_benchmark: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    table = load_benchmark("manifest_example_table")
    image = _predictions(
        tmp_path / "image.csv",
        [
            ("x1", "b", [0.8, 0.2, 0.0]),  # wrong alone; the product picks b, a sum of probabilities a
            ("x2", "a", [0.6, 0.3, 0.1]),  # only the image model has this row: its answer counts
            ("x3", "c", [0.1, 0.1, 0.8]),
        ],
    )
    audio = _predictions(
        tmp_path / "audio.csv",
        [
            ("x1", "b", [0.02, 0.38, 0.6]),  # wrong alone too
            ("x3", "c", [0.2, 0.7, 0.1]),  # wrong alone; the image model's confidence wins
        ],
    )
    accuracy, rows = table.product_accuracy([image, audio])
    assert rows == 3
    assert accuracy == pytest.approx(1.0)
    # one model alone: its own accuracy, over its own rows
    assert table.product_accuracy([audio]) == (pytest.approx(0.0), 2)
