"""notebooks/quickstart.ipynb: committed without outputs, and it runs end to end in a real kernel."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"


def _client(nb: Any) -> NotebookClient:
    # run from notebooks/, as Jupyter does; the notebook finds the repository root itself
    return NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )


def _outputs(nb: Any) -> list[Any]:
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]


def _text(nb: Any) -> str:
    return "".join(out.get("text", "") for out in _outputs(nb) if out.output_type == "stream")


def test_notebook_is_committed_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert len(code) >= 6
    for cell in code:
        assert cell.outputs == [], f"cell {cell.id} has outputs: strip them (nbstripout)"
        assert cell.execution_count is None, f"cell {cell.id} has an execution count"
    assert "widgets" not in nb.metadata


@pytest.mark.slow
def test_notebook_trains_a_tiny_run_predicts_and_plots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the kernel inherits the environment: runs (and the tiny one it trains) go to tmp_path
    monkeypatch.setenv("MMFUSE_RUNS", str(tmp_path / "runs"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    _client(nb).execute()  # raises CellExecutionError, with the cell and traceback, if any cell fails

    [ckpt] = (tmp_path / "runs" / "quickstart_tiny").glob("*/*/checkpoints/best-*.ckpt")
    run_dir = ckpt.parent.parent
    text = _text(nb)
    assert "no quickstart run found: training a tiny one" in text
    assert f"checkpoint {ckpt}" in text
    with (run_dir / "notebook_predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    # 240 samples, 15 % of them test: every test sample predicted once, with 4 class probabilities
    assert len(rows) == len({r["id"] for r in rows}) == 36
    assert f"{len(rows)} test samples predicted" in text
    assert all(len([k for k in r if k.startswith("prob_")]) == 4 for r in rows)
    # three figures: the samples' inputs, the attention maps, the confusion matrix
    images = [out for out in _outputs(nb) if "image/png" in out.get("data", {})]
    assert len(images) == 3
    assert not [out for out in _outputs(nb) if out.output_type == "error"]

    # a quickstart run exists now: a fresh kernel takes its checkpoint and trains nothing
    shutil.copytree(run_dir.parent, tmp_path / "found" / "quickstart" / run_dir.parent.name)
    monkeypatch.setenv("MMFUSE_RUNS", str(tmp_path / "found"))
    again = nbformat.read(NOTEBOOK, as_version=4)
    client = _client(again)
    with client.setup_kernel():
        first = next(i for i, cell in enumerate(again.cells) if "newest_checkpoint" in cell.source)
        for index in range(first + 1):
            client.execute_cell(again.cells[index], index)
    text = _text(again)
    assert "training a tiny one" not in text
    found = tmp_path / "found" / "quickstart" / run_dir.parent.name / run_dir.name / "checkpoints" / ckpt.name
    assert f"checkpoint {found}" in text
