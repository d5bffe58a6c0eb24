"""The per-modality LightningDataModule that every modality (image, text, audio, ...) extends."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
from torch import Tensor
from torch.utils.data import DataLoader

from mmfuse.data.manifest.errors import SampleError

if TYPE_CHECKING:
    from mmfuse.data.manifest.manifest import ManifestSource
    from mmfuse.data.manifest.tasks import TaskSpec
    from mmfuse.data.multimodal import MultimodalDataModule

Sample = dict[str, Tensor]


class ModalityDataModule(pl.LightningDataModule):
    """Decodes one manifest column into tensors, and collates them.

    Inside :class:`~mmfuse.data.multimodal.MultimodalDataModule` only the decoding side is used
    (:meth:`fit`, :meth:`load`, :meth:`collate`). Given a ``source`` it is a complete
    LightningDataModule on its own, for a single-modality run.

    Subclasses implement :meth:`load` and :meth:`collate`, and :meth:`fit` / :meth:`state_dict`
    when they learn something from the train split (e.g. a vocabulary).

    Args:
        column: manifest column that holds this modality (a file path or the text itself).
        required: an empty cell in this column is a problem (reported by ``mmfuse check-data``,
            an error or a skipped row in training) instead of "this modality is missing here".
        source: the manifest, only needed when this module is used alone.
        batch_size: samples per batch, only used when alone.
        num_workers: DataLoader worker processes, only used when alone.
    """

    #: modality name used as the key in ``Batch.inputs`` when this module is used alone.
    name: str = "modality"
    #: True when a cell holds a file path (relative to the manifest's folder): such a path may not lead
    #: outside that folder unless the source sets ``allow_outside_root`` (checked before ``load``).
    cell_is_path: bool = False

    def __init__(
        self,
        column: str,
        required: bool = False,
        source: ManifestSource | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.column = column
        self.required = required
        self.source = source
        self.batch_size = batch_size
        self.num_workers = num_workers
        self._alone: MultimodalDataModule | None = None

    # --- decoding: what MultimodalDataModule calls -------------------------------------------

    def fit(self, train_cells: Sequence[str]) -> None:
        """Learn whatever this modality needs from the train split's non-empty cells (default: nothing)."""

    def load(self, cell: str, root: Path, train: bool) -> Sample:
        """Decode one non-empty manifest cell into this sample's tensors.

        Args:
            cell: the cell's text (a path relative to ``root``, or the text itself).
            root: the manifest's folder.
            train: True for the train split (enables augmentation).

        Raises:
            SampleError: the cell cannot be decoded (missing file, corrupt file, ...).
        """
        raise NotImplementedError

    def load_bytes(self, data: bytes, name: str, train: bool) -> Sample:
        """Decode one sample's file read from elsewhere (a member of a WebDataset shard).

        Modalities whose cell names a file (``cell_is_path``) implement it; the default refuses.

        Args:
            data: the file's bytes.
            name: where they came from (``shard.tar:key.jpg``), for error messages.
            train: True for the train split (enables augmentation).

        Raises:
            SampleError: the bytes cannot be decoded.
        """
        raise SampleError(f"{type(self).__name__} cannot decode a file read from a shard", file=name)

    def collate(self, samples: Sequence[Sample | None]) -> dict[str, Tensor]:
        """Stack samples into the encoder's keyword arguments; ``None`` = modality missing for that sample."""
        raise NotImplementedError

    def encoder_requirements(self) -> dict[str, Any]:
        """Encoder attributes that must equal what this data produces, e.g. ``{"in_channels": 3}``.

        Called after :meth:`fit`. Those that are also a parameter of the encoder's constructor are
        filled in by the ``mmfuse`` command (:mod:`mmfuse.lit.data_links`), so a config sets them once.
        """
        return {}

    def fit_modalities(self) -> None:
        """Used alone: learn from the train split now (see ``MultimodalDataModule.fit_modalities``)."""
        self._standalone().fit_modalities()

    # --- standalone LightningDataModule ------------------------------------------------------

    def _standalone(self) -> MultimodalDataModule:
        from mmfuse.data.multimodal import MultimodalDataModule

        if self.source is None:
            raise ValueError(
                f"{type(self).__name__} used on its own needs `source` (the manifest); "
                "inside MultimodalDataModule the source is given there instead."
            )
        if self._alone is None:
            self._alone = MultimodalDataModule(
                source=self.source,
                modalities={self.name: self},
                batch_size=self.batch_size,
                num_workers=self.num_workers,
            )
            self._alone.trainer = self.trainer
        return self._alone

    @property
    def tasks(self) -> list[TaskSpec]:
        return self._standalone().tasks

    @property
    def class_names(self) -> list[str]:
        return self._standalone().class_names

    @property
    def num_classes(self) -> int:
        return self._standalone().num_classes

    @property
    def task(self) -> str | None:
        return self._standalone().task

    def prepare_data(self) -> None:
        self._standalone().prepare_data()

    def setup(self, stage: str) -> None:
        self._standalone().setup(stage)

    def train_dataloader(self) -> DataLoader:
        return self._standalone().train_dataloader()

    def val_dataloader(self) -> DataLoader:
        return self._standalone().val_dataloader()

    def test_dataloader(self) -> DataLoader:
        return self._standalone().test_dataloader()

    def predict_dataloader(self) -> DataLoader:
        return self._standalone().predict_dataloader()

    def state_dict(self) -> dict[str, Any]:
        """What must travel with a checkpoint (e.g. a vocabulary). Default: nothing."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
