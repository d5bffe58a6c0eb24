"""Tabular features: a fixed-length vector of numbers per sample, written in the manifest cell.

The worked example of docs/add-a-modality.md: a modality is one ModalityDataModule (this file) and one
encoder (``models/encoders/tabular_mlp.py``), registered in YAML by class path; no other file changes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from mmfuse.data.manifest.errors import SampleError
from mmfuse.data.modalities.base import ModalityDataModule, Sample

if TYPE_CHECKING:
    from mmfuse.data.manifest.source import ManifestSource

_SEPARATORS = re.compile(r"[;\s]+")  # not commas: a CSV cell would need quotes around them


class TabularDataModule(ModalityDataModule):
    """Decodes ``num_features`` numbers per sample into a ``(F,)`` float tensor, standardised.

    A cell holds the numbers, separated by spaces or semicolons (``"0.5;1.2;-3"``). With
    ``standardize`` each feature is shifted and scaled by its mean and standard deviation over the train
    split (learnt in :meth:`fit`, saved in checkpoints), so features of any unit train alike.
    The encoder receives ``features`` of shape ``(B, F)``; a missing sample is a row of zeros (its
    presence flag masks it out of the fusion).

    Args:
        column: manifest column holding the numbers.
        num_features: ``F``, the length every sample's vector must have.
        standardize: subtract the train mean and divide by the train standard deviation, per feature.
        required: an empty cell is a problem instead of "this modality is missing for the sample".
        source: the manifest, only needed when this module is used alone.
        batch_size: samples per batch, only used when alone.
        num_workers: DataLoader worker processes, only used when alone.
    """

    name = "tabular"

    def __init__(
        self,
        column: str = "tabular",
        num_features: int = 1,
        standardize: bool = True,
        required: bool = False,
        source: ManifestSource | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        super().__init__(
            column=column, required=required, source=source, batch_size=batch_size, num_workers=num_workers
        )
        if num_features < 1:
            raise ValueError(f"num_features must be >= 1, got {num_features}")
        self.num_features = num_features
        self.standardize = standardize
        self.mean = torch.zeros(num_features)  # (F,)
        self.std = torch.ones(num_features)  # (F,)

    def _read(self, cell: str) -> np.ndarray:
        """The cell's numbers as a float64 ``(F,)`` array; SampleError unless they are F finite numbers."""
        text = cell.strip()
        try:
            values = np.array([float(v) for v in _SEPARATORS.split(text) if v], dtype=np.float64)
        except ValueError as e:
            raise SampleError(f"not a list of numbers ({e}): {text[:60]!r}") from None
        if values.shape != (self.num_features,):
            raise SampleError(f"{values.size} numbers where num_features={self.num_features}: {text[:60]!r}")
        if not np.isfinite(values).all():
            raise SampleError(f"non-finite numbers (NaN or inf): {text[:60]!r}")
        return values

    def fit(self, train_cells: Sequence[str]) -> None:
        """Per-feature mean and standard deviation over the train split's valid cells."""
        if not self.standardize:
            return
        rows = []
        for cell in train_cells:
            try:
                rows.append(self._read(cell))
            except SampleError:
                continue  # a bad cell is reported by the data checks (and training), not here
        if rows:
            stacked = np.stack(rows)  # (N, F)
            self.mean = torch.from_numpy(stacked.mean(axis=0)).float()
            std = stacked.std(axis=0)
            # a constant feature would divide by zero: leave it centred, unscaled
            self.std = torch.from_numpy(np.where(std > 1e-12, std, 1.0)).float()

    def load(self, cell: str, root: Path, train: bool) -> Sample:
        """Decode one cell into ``{"features": (F,) float32}``, standardised.

        Raises:
            SampleError: the cell is not ``num_features`` finite numbers.
        """
        x = torch.from_numpy(self._read(cell)).float()  # (F,)
        if self.standardize:
            x = (x - self.mean) / self.std
        return {"features": x}

    def collate(self, samples: Sequence[Sample | None]) -> dict[str, Tensor]:
        """Stack into ``{"features": (B, F)}``; a missing sample (``None``) is a row of zeros."""
        blank = torch.zeros(self.num_features)
        return {"features": torch.stack([blank if s is None else s["features"] for s in samples])}

    def encoder_requirements(self) -> dict[str, int]:
        return {"in_features": self.num_features}

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        mean, std = state_dict["mean"], state_dict["std"]
        if len(mean) != self.num_features or not all(math.isfinite(s) and s > 0 for s in std):
            raise ValueError(f"tabular state {state_dict} does not fit num_features={self.num_features}")
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)
