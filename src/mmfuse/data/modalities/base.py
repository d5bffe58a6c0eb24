"""The per-modality LightningDataModule that every modality (image, text, audio, ...) extends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pytorch_lightning as pl
from torch import Tensor

from mmfuse.data.manifest.errors import SampleError
from mmfuse.data.manifest.source import ManifestSource

Sample = dict[str, Tensor]


class SampleView(NamedTuple):
    """How one sample of a modality is shown (W&B's tables and media panels), in plain values.

    ``kind`` says what ``value`` is: ``image`` (a file path, or an ``(H, W, C)`` array), ``audio`` (a
    file path, or ``(samples, sample_rate)``) or ``text`` (the text itself; also what a viewer does with
    a kind it does not know).
    """

    kind: str
    value: Any
    tokens: list[str] | None = None
    """the sample's tokens as text, in the order the encoder gets them (attention maps' labels)"""


class ModalityDataModule(pl.LightningDataModule):
    """Decodes one manifest column into tensors, and collates them.

    :class:`~mmfuse.data.multimodal.MultimodalDataModule` joins modalities by sample id and serves
    the batches; it calls the decoding side here (:meth:`fit`, :meth:`load`, :meth:`collate`). A
    single-modality run is the join of one: ``MultimodalDataModule.alone(dm)`` reads ``source``,
    ``batch_size`` and ``num_workers`` from this module (the ``mmfuse`` command does this when a
    config's ``data`` is one modality). This module never imports the join.

    Subclasses implement :meth:`load` and :meth:`collate`, and :meth:`fit` / :meth:`state_dict`
    when they learn something from the train split (e.g. a vocabulary).

    Args:
        column: manifest column that holds this modality (a file path or the text itself).
        required: an empty cell in this column is a problem (reported by ``mmfuse check-data``,
            an error or a skipped row in training) instead of "this modality is missing here".
        source: the manifest, only needed when this module is used alone (see above).
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

    def sample_view(self, cell: str, root: Path, inputs: Mapping[str, Tensor], b: int) -> SampleView:
        """How a viewer shows one sample of this modality (default: its manifest cell, as text).

        A modality with its own media overrides it; the viewer (``mmfuse.lit.wandb``) turns the plain
        :class:`SampleView` into a logger's objects, so data/ needs no logger.

        Args:
            cell: the sample's non-empty manifest cell.
            root: the manifest's folder (paths in cells are relative to it).
            inputs: this modality's inputs of the collated batch (what :meth:`collate` returned).
            b: the sample's index in that batch.
        """
        return SampleView("text", cell)

    # --- used alone ----------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        raise TypeError(
            f"{type(self).__name__} decodes one column; batches come from the join: "
            "MultimodalDataModule.alone(dm) serves this modality alone (the mmfuse command does this "
            "when a config's `data` is one modality), or list it under MultimodalDataModule's `modalities`"
        )

    def state_dict(self) -> dict[str, Any]:
        """What must travel with a checkpoint (e.g. a vocabulary). Default: nothing."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
