"""Extending mmfuse without core edits: the add-a-modality guide's config, read from the guide, trains a
new modality (tabular) and a new fuser (gated) through the `mmfuse` command, each chosen by class path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mmfuse.main import main
from tests.conftest import write_manifest, write_png

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "add-a-modality.md"


def _guide_config() -> str:
    """The YAML block of the guide that defines configs/my_tabular.yaml."""
    text = GUIDE.read_text()
    start = text.index("```yaml\n# configs/my_tabular.yaml\n") + len("```yaml\n")
    return text[start : text.index("```", start)]


def _patients(root: Path, n: int = 48) -> Path:
    """Images of noise, and three vitals whose first one decides the label (the tabular cue)."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        sick = i % 2 == 1
        vitals = [38.5 + rng.normal(0, 0.3) if sick else 36.6 + rng.normal(0, 0.3), rng.normal(80, 10), 0.95]
        rows.append(
            {
                "id": f"p{i:03d}",
                "split": "train" if i < 32 else ("val" if i < 40 else "test"),
                "image": "xray/" + write_png(root / "xray" / f"p{i:03d}.png", i),
                "vitals": ";".join(f"{v:.3f}" for v in vitals) if i != 5 else "",  # one missing: masked
                "label": "sick" if sick else "healthy",
            }
        )
    return write_manifest(root / "manifest.csv", rows)


@pytest.mark.slow
def test_guide_config_trains_a_new_modality_and_fuser_by_class_path(tmp_path: Path) -> None:
    config = tmp_path / "my_tabular.yaml"
    config.write_text(_guide_config())
    manifest = _patients(tmp_path / "data")
    run_dir = tmp_path / "runs"
    main(
        [
            "fit",
            "--config",
            str(config),
            "--config",
            str(ROOT / "configs" / "logger" / "csv.yaml"),
            f"--data.init_args.source.init_args.path={manifest}",
            "--data.init_args.batch_size=16",
            "--trainer.max_epochs=3",
            "--trainer.accelerator=cpu",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={run_dir}",
        ]
    )
    [metrics_file] = run_dir.glob("*/*/test_metrics.json")
    metrics = json.loads(metrics_file.read_text())
    assert 0.0 <= metrics["test/acc"] <= 1.0
    ckpt = torch.load(metrics["checkpoint"], weights_only=True)
    # the new classes were built from their class paths, and the data's statistics travel with the checkpoint
    params = ckpt["state_dict"]
    assert any(k.startswith("model.encoders.tabular.mlp.") for k in params)
    assert any(k.startswith("model.fusion.gate.") for k in params)
    tabular_state = ckpt["MultimodalDataModule"]["modalities"]["tabular"]
    assert 36.6 < tabular_state["mean"][0] < 38.5 and len(tabular_state["std"]) == 3
