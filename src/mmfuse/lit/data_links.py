"""The data decides some of its encoder's settings, and must fit the model: both are settled here.

The ``mmfuse`` command fills the data's settings into the encoders' config, so each is set once, and
:func:`check_data_matches_model` stops a stage before its first batch if data and encoders still disagree.
The other way round, a pretrained encoder decides some of its data's settings (:func:`link_pretrained`:
the text data's tokenizer, the image data's mean/std).

Each modality's DataModule says what its encoder must have (``encoder_requirements``, after learning
from the train split): image ``channels`` -> ``in_channels``, the learnt text vocabulary's size (or a
Hugging Face tokenizer's) -> ``vocab_size``, audio ``n_mels`` -> ``n_mels``, graph ``node_dim`` /
``edge_dim`` -> ``in_dim`` / ``edge_dim``, tabular ``num_features`` -> ``in_features``. Those that are
parameters of the encoder's constructor are written into ``model.encoders.<modality>.init_args``
before the model is built.

A value the config gives the encoder that disagrees with the data is replaced, with a printed note: the
data is what the encoder will receive (a 1-channel image cannot feed a 3-channel convolution), and a
checkpoint's saved settings (``mmfuse test --ckpt_path``) must not stop a run on the data it was trained
on. A jsonargparse link cannot do this: the encoders are a dict of subclass configs whose keys the
parser does not know (as for :func:`link_pretrained`), and the vocabulary size is
known only once the data has read its train split.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
from jsonargparse import ArgumentParser, Namespace
from torch import nn

from mmfuse.data.manifest.errors import ConfigError
from mmfuse.data.modalities.base import ModalityDataModule
from mmfuse.data.modalities.image import ImageDataModule
from mmfuse.data.modalities.text import TextDataModule
from mmfuse.models.encoders.hf_common import preprocessor_dict
from mmfuse.models.encoders.hf_image import HFImageEncoder, per_channel
from mmfuse.models.encoders.hf_text import HFTextEncoder
from mmfuse.models.multimodal import MultimodalModel
from mmfuse.pretrained import import_object, resolve_model_path


def build_data(config: Namespace) -> Any:
    """Only the configured DataModule: a bad manifest must not stop the model or trainer being built first."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(pl.LightningDataModule, "data", required=True)
    data = config["data"]
    cfg = parser.parse_object({"data": data.as_dict() if isinstance(data, Namespace) else data})
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    return instantiate(cfg)["data"]


def link_data_into_encoders(config: Namespace, data: pl.LightningDataModule) -> list[str]:
    """Write what ``data`` decides about each encoder into ``config.model.encoders``, in place.

    Args:
        config: the subcommand's parsed config (``model.encoders`` of ``class_path`` + ``init_args``).
        data: the configured DataModule, built; its modalities learn from the train split here
            (once: ``setup`` does not repeat it).

    Returns:
        One note per setting the config gave that the data's value replaced.

    Raises:
        ConfigError: the data's modalities and the encoders have different names.
    """
    encoders = config_get(config_get(config, "model"), "encoders")
    modalities = data_modalities(data)
    if not isinstance(encoders, dict) or not modalities:
        return []
    different = name_mismatch(modalities, encoders)
    if different:
        raise ConfigError(different)  # before an encoder without data fails for want of its settings
    fit = getattr(data, "fit_modalities", None)
    if fit is not None:
        fit()
    notes = []
    for name, encoder in encoders.items():
        dm = modalities.get(name)
        params = _init_parameters(config_get(encoder, "class_path"))
        if dm is None or not params:
            continue
        init_args = config_get(encoder, "init_args")
        if init_args is None:
            encoder["init_args"] = init_args = Namespace()
        for attr, value in dm.encoder_requirements().items():
            if attr not in params or value is None:
                continue
            given = config_get(init_args, attr)
            if given is not None and given != value and given != params[attr].default:
                notes.append(
                    f"model.encoders.{name}.init_args.{attr}: {given} -> {value}, as the data gives "
                    f"({type(dm).__name__}); the encoder's value is taken from the data, leave it unset"
                )
            init_args[attr] = value
    return notes


def _init_parameters(class_path: Any) -> dict[str, inspect.Parameter]:
    """The constructor parameters of the class a config names; empty when it cannot be imported."""
    cls = import_object(class_path)
    return dict(inspect.signature(cls).parameters) if inspect.isclass(cls) else {}


def builds_encoder_settings(config: Namespace) -> bool:
    """Whether the configured data is one of mmfuse's DataModules (those that decide encoder settings)."""
    from mmfuse.data.modalities.base import ModalityDataModule
    from mmfuse.data.multimodal import MultimodalDataModule

    cls = import_object(config_get(config_get(config, "data"), "class_path"))
    return inspect.isclass(cls) and issubclass(cls, MultimodalDataModule | ModalityDataModule)


#: requirements an encoder meets with at least the data's value: token ids index an embedding, and
#: unused rows are only waste (an encoder built in Python may be sized before the vocabulary is learnt)
AT_LEAST = frozenset({"vocab_size"})


def data_modalities(datamodule: pl.LightningDataModule) -> dict[str, ModalityDataModule]:
    """Modality name -> its DataModule: a MultimodalDataModule's modalities, or one modality used alone."""
    if isinstance(datamodule, ModalityDataModule):
        return {datamodule.name: datamodule}
    return dict(getattr(datamodule, "modalities", {}))


def mismatches(modalities: Mapping[str, ModalityDataModule], encoders: Mapping[str, nn.Module]) -> list[str]:
    """Every way the data and the encoders disagree, one sentence each naming both settings.

    The data's modalities must be the encoders' names, and what each modality's data implies about
    its encoder (``encoder_requirements``: channels, mel bins, ...) must hold; the vocabulary size
    (:data:`AT_LEAST`) must be reached.
    """
    different = name_mismatch(modalities, encoders)
    if different:
        return [different]
    problems = []
    for name, dm in modalities.items():
        encoder = encoders[name]
        for attr, value in dm.encoder_requirements().items():
            have = getattr(encoder, attr, None)
            if have is not None and (have < value if attr in AT_LEAST else have != value):
                problems.append(
                    f"modality {name!r}: the data gives {attr}={value} but encoder {type(encoder).__name__} "
                    f"has {attr}={have}: make the data's setting and the encoder's "
                    f"(model.encoders.{name}.init_args) agree"
                )
    return problems


def name_mismatch(modalities: Mapping[str, object], encoders: Mapping[str, object]) -> str | None:
    """What is wrong when the data's modalities and the model's encoders have different names, else None."""
    if sorted(modalities) == sorted(encoders):
        return None
    return (
        f"the data has modalities {sorted(modalities)} but the model has encoders {sorted(encoders)}: "
        "data.init_args.modalities and model.encoders must use the same names"
    )


def check_data_matches_model(datamodule: pl.LightningDataModule, model: MultimodalModel) -> None:
    """A clear error now, not a shape error later, if the data does not fit the model's encoders.

    Raises:
        ConfigError: the first of :func:`mismatches`.
    """
    problems = mismatches(data_modalities(datamodule), dict(model.encoders.items()))
    if problems:
        raise ConfigError(problems[0])


def link_pretrained(config: Any) -> None:
    """Fill the data's settings that a pretrained encoder decides, in a parsed ``fit``/``test`` config.

    Runs on the parsed config before anything is built. For each modality whose encoder is a Hugging
    Face one (matched by modality name):

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
    model, data = config_get(config, "model"), config_get(config, "data")
    encoders = config_get(model, "encoders") or {}
    if not isinstance(encoders, dict):
        return
    for modality, encoder in encoders.items():
        data_cfg = _modality_data(data, modality)
        if data_cfg is None or config_get(data_cfg, "init_args") is None:
            continue
        # classes, not strings: configs may name them by a package's re-export (mmfuse.data.TextDataModule)
        enc_cls = import_object(config_get(encoder, "class_path"))
        data_cls = import_object(config_get(data_cfg, "class_path"))
        enc_args, data_args = config_get(encoder, "init_args"), config_get(data_cfg, "init_args")
        if enc_cls is HFTextEncoder and data_cls is TextDataModule:
            name = config_get(enc_args, "model_name_or_path")
            tokenizer = config_get(data_args, "tokenizer")
            if tokenizer is None:
                data_args["tokenizer"] = name
            elif name is not None and resolve_model_path(tokenizer) != resolve_model_path(name):
                raise ValueError(
                    f"modality {modality!r}: the data's tokenizer is {tokenizer!r} but the encoder "
                    f"HFTextEncoder loads {name!r}: leave the text data's tokenizer unset (it is taken from "
                    "model.encoders.<modality>.init_args.model_name_or_path) or make the two the same"
                )
        elif enc_cls is HFImageEncoder and data_cls is ImageDataModule:
            if config_get(data_args, "mean") is not None and config_get(data_args, "std") is not None:
                continue
            processor = preprocessor_dict(
                str(config_get(enc_args, "model_name_or_path")),
                bool(config_get(enc_args, "trust_remote_code")),
            )
            channels = int(config_get(data_args, "channels") or 3)
            for key in ("mean", "std"):
                value = processor.get(f"image_{key}")
                if config_get(data_args, key) is None and value is not None:
                    data_args[key] = per_channel(value, channels)


def _modality_data(data: Any, modality: str) -> Any:
    """The per-modality data config of ``modality``: inside MultimodalDataModule, or the data itself."""
    if data is None:
        return None
    modalities = config_get(config_get(data, "init_args"), "modalities")
    if isinstance(modalities, dict):
        return modalities.get(modality)
    return data  # one modality's DataModule used alone: its name is checked by class


def config_get(cfg: Any, key: str) -> Any:
    """``cfg[key]`` of a jsonargparse Namespace or a dict; None when absent."""
    if cfg is None:
        return None
    try:
        return cfg[key]
    except (KeyError, TypeError):
        return getattr(cfg, key, None)
