"""Errors a user caused are one clear message (exit code 1); ``--debug`` shows the traceback; help helps."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mmfuse.cli.help import LIGHTNING_PURPOSES, whole_sentences
from mmfuse.cli.user_errors import find_user_error, report
from mmfuse.commands import COMMANDS, PURPOSES
from mmfuse.data.manifest.errors import ConfigError, DataError
from mmfuse.main import main
from tests.conftest import quickstart_args

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # configs name paths relative to the repository root
    monkeypatch.delenv("MMFUSE_DEBUG", raising=False)


def _manifest_config(tmp_path: Path, manifest: Path, **data_args: object) -> list[str]:
    """The quickstart's model and trainer on a manifest (tests.conftest.small_manifest's columns)."""
    config = yaml.safe_load((ROOT / "configs/quickstart.yaml").read_text())
    config["data"]["init_args"]["source"] = {
        "class_path": "mmfuse.data.ManifestSource",
        "init_args": {"path": str(manifest)},
    }
    config["data"]["init_args"].update({"num_workers": 0, "batch_size": 4, **data_args})
    config["trainer"].update(
        {"max_epochs": 1, "default_root_dir": str(tmp_path / "runs"), "logger": False, "callbacks": []}
    )
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return ["--config", str(path), "--trainer.enable_progress_bar=false"]


def _fails_with_one_message(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``mmfuse <args>``: it must exit with code 1 and a short stderr without a traceback."""
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 4, err
    assert "--debug" in err  # says how to see the traceback
    return err


def test_a_bad_manifest_row_names_file_row_and_column(
    tmp_path: Path, small_manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (small_manifest.parent / "media" / "3.png").unlink()  # a train row's image
    err = _fails_with_one_message(["fit", *_manifest_config(tmp_path, small_manifest)], capsys)
    assert "data error:" in err
    assert "row 4" in err and "id 's3'" in err and "column 'image'" in err and "3.png" in err


def test_an_encoder_without_data_names_both_settings(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = tmp_path / "encoders.yaml"
    encoder = {"class_path": "mmfuse.models.encoders.tabular_mlp.TabularMLP", "init_args": {"in_features": 3}}
    extra.write_text(yaml.safe_dump({"model": {"encoders": {"table": encoder}}}))
    args = ["fit", *quickstart_args(synthetic_root, tmp_path), "--config", str(extra)]
    err = _fails_with_one_message(args, capsys)
    assert "config error:" in err
    assert "modalities ['audio', 'image', 'text']" in err and "encoders ['table']" in err
    assert "data.init_args.modalities and model.encoders" in err


def test_an_empty_split_is_one_message(
    tmp_path: Path, small_manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = small_manifest.read_text().splitlines()
    # no train rows: every train row becomes a test row
    small_manifest.write_text(
        "\n".join([lines[0], *(line.replace(",train,", ",test,") for line in lines[1:])])
    )
    err = _fails_with_one_message(["fit", *_manifest_config(tmp_path, small_manifest)], capsys)
    assert "'train'" in err and str(small_manifest) in err


def test_batch_size_zero_names_the_setting(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["fit", *quickstart_args(synthetic_root, tmp_path), "--data.init_args.batch_size=0"]
    err = _fails_with_one_message(args, capsys)
    assert "data.init_args.batch_size must be >= 1, got 0" in err


def test_a_value_of_the_wrong_type_is_one_message(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["fit", *quickstart_args(synthetic_root, tmp_path), "--trainer.max_epochs=ten"]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "trainer.max_epochs" in err and "ten" in err and "Traceback" not in err
    assert len(err.splitlines()) < 15  # not the 80-line usage


def test_a_constructor_rejecting_its_settings_is_one_message(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["fit", *quickstart_args(synthetic_root, tmp_path), "--model.fusion.init_args.num_heads=3"]
    err = _fails_with_one_message(args, capsys)
    assert "num_heads=3 must divide d_model=64" in err


def test_debug_raises_with_the_traceback(synthetic_root: Path, tmp_path: Path) -> None:
    args = ["fit", *quickstart_args(synthetic_root, tmp_path), "--data.init_args.batch_size=0"]
    with pytest.raises(ValueError) as info:  # raised as it was, wrapped by jsonargparse
        main([*args, "--debug"])
    assert isinstance(find_user_error(info.value), ConfigError)
    assert "batch_size must be >= 1" in str(find_user_error(info.value))


def test_mmfuse_debug_variable_raises(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMFUSE_DEBUG", "1")
    args = ["fit", *quickstart_args(synthetic_root, tmp_path), "--data.init_args.batch_size=0"]
    with pytest.raises(ValueError) as info:
        main(args)
    assert isinstance(find_user_error(info.value), ConfigError)


def test_a_programming_error_keeps_its_traceback(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr("mmfuse.cli.MultimodalCLI.before_fit", broken)
    with pytest.raises(KeyError, match="a bug"):
        main(["fit", *quickstart_args(synthetic_root, tmp_path), "--trainer.logger=false"])


def test_the_command_line_prints_one_message_and_debug_the_traceback(
    synthetic_root: Path, tmp_path: Path
) -> None:
    args = [
        sys.executable,
        "-m",
        "mmfuse",
        "fit",
        *quickstart_args(synthetic_root, tmp_path),
        "--data.init_args.batch_size=0",
    ]
    env = {k: v for k, v in os.environ.items() if k != "MMFUSE_DEBUG"}
    short = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=300, env=env)
    assert short.returncode == 1
    assert "Traceback" not in short.stderr and "batch_size must be >= 1" in short.stderr
    assert len(short.stderr.strip().splitlines()) <= 3, short.stderr
    full = subprocess.run([*args, "--debug"], capture_output=True, text=True, cwd=ROOT, timeout=300, env=env)
    assert full.returncode == 1
    assert "Traceback" in full.stderr and "ConfigError: data.init_args.batch_size" in full.stderr


def test_the_user_error_is_found_inside_lightning_and_jsonargparse_wrapping() -> None:
    cause = DataError("no such file", file="m.csv", row=3, column="image")
    try:
        try:
            raise cause
        except DataError as error:
            raise ValueError("Call to compute_fn of link 'data --> model.tasks' failed") from error
    except ValueError as wrapped:
        assert find_user_error(wrapped) is cause
    assert find_user_error(RuntimeError("a bug")) is None
    assert find_user_error(ValueError("from a library")) is None


def test_only_rank_zero_prints(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning_fabric.utilities.rank_zero import rank_zero_only

    monkeypatch.setattr(rank_zero_only, "rank", 1, raising=False)
    report(ConfigError("bad"), "fit")
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(rank_zero_only, "rank", 0, raising=False)
    report(ConfigError("bad"), "fit")
    assert "config error: bad" in capsys.readouterr().err


# --- help ----------------------------------------------------------------------------------------


def test_help_lists_every_subcommand_with_a_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    assert set(COMMANDS) <= set(PURPOSES)  # a new command needs its purpose
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: mmfuse") and "mmfuse: multimodal deep learning" in out
    listed = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and line.split()}
    for name in ["fit", "validate", "test", "predict", "check-data", "ablate", *COMMANDS]:
        assert name in listed, name
        assert listed[name].rstrip().endswith("."), listed[name]  # a whole sentence
    assert "Lightning Trainer command line tool" not in out
    assert set(LIGHTNING_PURPOSES) == {"fit", "validate", "test", "predict"}


def test_no_arguments_prints_the_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 1 and "check-data" in capsys.readouterr().out


def test_fit_help_lists_only_the_projects_encoders_in_whole_sentences() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mmfuse", "fit", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr  # `python -m mmfuse` is the command too
    out = result.stdout
    assert "--model.encoders" in out and "--checkpoint.monitor" in out
    assert "torch.nn.Linear" not in out and "torch.nn.ReLU" not in out
    assert "mmfuse.models.encoders.ImageCNN" in out and "mmfuse.models.encoders.TextTransformer" in out
    assert (
        "mmfuse.models.fusion.CrossModalAttentionFusion" in out and "mmfuse.data.MultimodalDataModule" in out
    )
    assert len(out.splitlines()) < 800  # was 1,277 lines
    assert out.startswith("usage: mmfuse [options] fit [-h]") and out.splitlines()[1] == ""  # one line
    assert "Every logged metrics are passed to the:" not in out  # docstring lines cut mid-sentence
    assert "The main advantage is:" not in out
    assert LIGHTNING_PURPOSES["fit"][:40] in " ".join(out.split())


def test_whole_sentences() -> None:
    assert whole_sentences("Save the model. Every logged metric is passed to the") == "Save the model"
    assert (
        whole_sentences("Trains encoders (multiclass, regression).")
        == "Trains encoders (multiclass, regression)"
    )
    assert whole_sentences("No sentence end here") == "No sentence end here"
