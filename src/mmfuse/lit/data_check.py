"""Does the data fit the model? Checked when a stage starts, before the first batch."""

from __future__ import annotations

import pytorch_lightning as pl

from mmfuse.data.base import ModalityDataModule
from mmfuse.models.multimodal import MultimodalModel


def check_data_matches_model(datamodule: pl.LightningDataModule, model: MultimodalModel) -> None:
    """The data's modalities must be the encoders', and what each modality's data implies about its
    encoder (vocabulary size, channels, mel bins) must hold: a clear error now, not a shape error later.
    """
    if isinstance(datamodule, ModalityDataModule):
        modalities = {datamodule.name: datamodule}
    else:
        modalities = dict(getattr(datamodule, "modalities", {}))
    if sorted(modalities) != sorted(model.encoders):
        raise ValueError(
            f"the data has modalities {sorted(modalities)} but the model has encoders "
            f"{sorted(model.encoders)}: data.modalities and model.encoders must use the same names"
        )
    for name, dm in modalities.items():
        encoder = model.encoders[name]
        for attr, value in dm.encoder_requirements().items():
            have = getattr(encoder, attr, None)
            if have is not None and have != value:
                raise ValueError(
                    f"modality {name!r}: the data gives {attr}={value} but encoder {type(encoder).__name__} "
                    f"has {attr}={have}: make the data's setting and the encoder's "
                    f"(model.encoders.{name}.init_args) agree"
                )
