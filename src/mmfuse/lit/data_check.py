"""Does the data fit the model? Checked when a stage starts, before the first batch, and by ``check-data``."""

from __future__ import annotations

from collections.abc import Mapping

import pytorch_lightning as pl
from torch import nn

from mmfuse.data.base import ModalityDataModule
from mmfuse.data.errors import ConfigError
from mmfuse.models.multimodal import MultimodalModel

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
