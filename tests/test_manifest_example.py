"""configs/manifest_example.yaml, the config a user copies first: its marked lines are all a user sets,
its text block switches on in one step, and a fit runs through it on a small manifest."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch

from mmfuse.main import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "configs" / "manifest_example.yaml"
COMMENTED_KEY = re.compile(r"^(\s*)# ([a-z_]+:.*)$")


def with_text(config: str) -> str:
    """The example with its ``text`` blocks uncommented, as its header tells a user to do: every line
    of a block commented at the block's own indentation, from ``# text:`` to the first line that is
    not commented there (a comment after the code stays a comment)."""
    out, indent = [], None
    for line in config.splitlines():
        match = COMMENTED_KEY.match(line)
        if match and match.group(2).startswith("text:"):
            indent = match.group(1)
        if indent is not None and line.startswith(indent + "#"):
            line = indent + line[len(indent) + 2 :]
        elif indent is not None:
            indent = None
        out.append(line)
    return "\n".join(out) + "\n"


def _fit_args(config: Path, manifest: Path, run_dir: Path) -> list[str]:
    """The example with only its marked lines changed (the manifest, the run folder), one quick epoch."""
    return [
        "fit",
        "--config",
        str(config),
        "--data.init_args.source.init_args.path",
        str(manifest),
        "--trainer.default_root_dir",
        str(run_dir),
        "--trainer.max_epochs=1",
        "--trainer.logger=false",
        "--data.init_args.num_workers=0",
        "--data.init_args.batch_size=4",
    ]


def test_every_line_a_user_must_set_is_marked() -> None:
    marked = [line for line in EXAMPLE.read_text().splitlines() if "# <-" in line]
    keys = " ".join(marked)
    for key in ("default_root_dir", "path:", "target:", "column: image", "column: audio"):
        assert key in keys, f"{key} is not on a line marked <-"


@pytest.fixture(autouse=True)
def _plain_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["mmfuse"])  # LightningCLI warns when given args beside pytest's


def test_the_text_block_switches_on_in_one_step(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "my_data.yaml"
    for text_on in (False, True):
        config.write_text(with_text(EXAMPLE.read_text()) if text_on else EXAMPLE.read_text())
        with pytest.raises(SystemExit) as info:
            main(["fit", "--config", str(config), "--print_config"])
        assert info.value.code == 0
        printed = capsys.readouterr().out
        assert ("mmfuse.data.TextDataModule" in printed) == text_on
        assert ("mmfuse.models.encoders.TextTransformer" in printed) == text_on


def test_a_fit_runs_through_the_example_with_text_switched_on(
    small_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    config = tmp_path / "my_data.yaml"
    config.write_text(with_text(EXAMPLE.read_text()))
    main(_fit_args(config, small_manifest, tmp_path / "run"))
    [metrics_file] = (tmp_path / "run").glob("**/test_metrics.json")
    metrics = json.loads(metrics_file.read_text())
    assert 0.0 <= metrics["test/acc"] <= 1.0
    state = torch.load(metrics["checkpoint"], weights_only=True)["state_dict"]
    for modality in ("image", "audio", "text"):  # all three were trained, text included
        assert any(k.startswith(f"model.encoders.{modality}.") for k in state), modality
