"""Data settings flow into the encoders: image channels, the learnt vocabulary's size, audio mel bins."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from mmfuse.cli import MultimodalCLI
from mmfuse.lit.module import MultimodalModule
from mmfuse.main import main
from mmfuse.models.encoders import TextRNN, TextTransformer
from tests.conftest import quickstart_args

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # configs name paths relative to the repository root


def _built(args: list[str]) -> MultimodalCLI:
    import pytorch_lightning as pl

    return MultimodalCLI(
        MultimodalModule,
        pl.LightningDataModule,
        subclass_mode_data=True,
        args=[*args, "--trainer.logger=false"],
        run=False,
        auto_configure_optimizers=False,
    )


def test_the_encoders_take_the_data_settings(synthetic_root: Path, tmp_path: Path) -> None:
    cli = _built(
        [
            *quickstart_args(synthetic_root, tmp_path),
            "--data.init_args.modalities.image.init_args.channels=1",
            "--data.init_args.modalities.audio.init_args.n_mels=16",
        ]
    )
    data, encoders = cli.datamodule, cli.model.model.encoders
    vocab = data.modalities["text"].vocab
    assert 2 < len(vocab) < 512  # the learnt vocabulary, not the data's cap (512)
    assert encoders["text"].vocab_size == len(vocab) and encoders["text"].embed.num_embeddings == len(vocab)
    assert encoders["image"].in_channels == 1 and encoders["audio"].n_mels == 16
    # the checkpoint's hyper-parameters hold the linked values, so load_from_checkpoint builds the same model
    saved = cli.model.hparams["encoders"]
    assert saved["text"]["init_args"]["vocab_size"] == len(vocab)
    assert saved["image"]["init_args"]["in_channels"] == 1 and saved["audio"]["init_args"]["n_mels"] == 16
    # the data is built once: the instance the model was sized from is the one that trains
    assert cli.datamodule is cli.config_init["data"]


def test_a_disagreeing_encoder_setting_is_replaced_with_a_note(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = yaml.safe_load((ROOT / "configs/quickstart.yaml").read_text())
    encoders = config["model"]["encoders"]
    encoders["text"]["init_args"]["vocab_size"] = 999
    encoders["audio"]["init_args"]["n_mels"] = 40  # AudioCNN's default: taken as unset, no note
    extra = tmp_path / "encoders.yaml"
    extra.write_text(yaml.safe_dump({"model": {"encoders": encoders}}))
    cli = _built([*quickstart_args(synthetic_root, tmp_path), "--config", str(extra)])
    size = len(cli.datamodule.modalities["text"].vocab)
    assert cli.model.model.encoders["text"].vocab_size == size
    assert cli.model.model.encoders["audio"].n_mels == 32
    err = capsys.readouterr().err
    assert f"model.encoders.text.init_args.vocab_size: 999 -> {size}" in err
    assert "n_mels" not in err


def test_a_checkpoint_is_tested_with_the_vocabulary_size_it_was_trained_with(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["fit", *quickstart_args(synthetic_root, tmp_path / "fit"), "--trainer.logger=false"])
    [last] = (tmp_path / "fit").glob("**/last.ckpt")
    ckpt = torch.load(last, weights_only=True)
    rows = ckpt["state_dict"]["model.encoders.text.embed.weight"].shape[0]
    assert (
        rows == len(ckpt["MultimodalDataModule"]["modalities"]["text"]["vocab"]) < 512
    )  # the saved vocabulary
    assert ckpt["hyper_parameters"]["encoders"]["text"]["init_args"]["vocab_size"] == rows
    capsys.readouterr()
    main(["test", *quickstart_args(synthetic_root, tmp_path / "test"), "--ckpt_path", str(last)])
    assert "note" not in capsys.readouterr().err  # the checkpoint's setting agrees with the data
    assert MultimodalModule.load_from_checkpoint(last).model.encoders["text"].vocab_size == rows


def test_check_data_reports_what_the_model_would_stop_on(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = tmp_path / "encoders.yaml"
    encoder = {"class_path": "mmfuse.models.encoders.AudioCNN", "init_args": {"d_model": 64}}
    extra.write_text(yaml.safe_dump({"model": {"encoders": {"sound": encoder}}}))
    with pytest.raises(SystemExit) as info:
        main(["check-data", *quickstart_args(synthetic_root, tmp_path), "--config", str(extra)])
    assert info.value.code == 1
    out = capsys.readouterr().out
    assert "encoders ['sound']" in out and "the data does not fit the model: 1 problem" in out


def test_text_encoders_need_their_vocabulary_size() -> None:
    for encoder in (TextTransformer, TextRNN):
        with pytest.raises(ValueError, match="vocab_size is not set"):
            encoder()
