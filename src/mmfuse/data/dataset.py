"""One split as a PyTorch Dataset (each item: one row, every modality decoded) and the collate
function that stacks items into a :class:`~mmfuse.types.Batch`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from torch.utils.data import Dataset, get_worker_info

from mmfuse.data.decode import decode_row
from mmfuse.data.manifest.errors import DataError
from mmfuse.data.manifest.manifest import Manifest, Row
from mmfuse.data.manifest.tasks import TaskKind
from mmfuse.data.modalities.base import ModalityDataModule
from mmfuse.data.sampling import SampleKey
from mmfuse.types import Batch

Item = dict[str, Any]


class ManifestDataset(Dataset[Item | DataError]):
    """One split of the manifest; ``__getitem__`` decodes every modality of one row (in a worker).

    Args:
        manifest: the parsed manifest.
        rows: the rows of this split.
        modalities: modality name -> the DataModule that decodes its column, in sorted name order.
        train: decode with train-time augmentation.
        labelled: check targets (train/val/test); False for predict, where a target may be anything.

    A bad row gives its first :class:`DataError` as the item (see :func:`~mmfuse.data.decode.decode_row`).
    """

    def __init__(
        self,
        manifest: Manifest,
        rows: Sequence[Row],
        modalities: Mapping[str, ModalityDataModule],
        train: bool,
        labelled: bool = True,
    ) -> None:
        self.manifest = manifest
        self.rows = list(rows)
        self.modalities = dict(modalities)
        self.train = train
        self.labelled = labelled

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: int | SampleKey) -> Item | DataError:
        if isinstance(key, tuple):
            seed, index = key
            # train-time augmentation draws from a generator seeded per sample: the same result in
            # any worker and after any resume, and the main process's random stream is left alone
            with torch.random.fork_rng(devices=[]):
                # the CPU generator only (what augmentation draws from): torch.manual_seed would also
                # reseed every CUDA device (not restored by fork_rng) and costs ~20x more per sample
                torch.default_generator.manual_seed(seed)
                return self._item(index)
        return self._item(key)

    def _item(self, index: int) -> Item | DataError:
        row = self.rows[index]
        decoded = decode_row(self.manifest, row, self.modalities, self.train, self.labelled)
        if decoded.problems:
            # returned, not raised: a worker's exception would reach the main process wrapped in a
            # worker traceback; Collate and MultimodalDataModule.on_before_batch_transfer raise it plainly
            return decoded.problems[0]
        # labelled: decode_row has checked the targets; unlabelled (predict): an invalid one is just unknown
        targets = self.manifest.targets(row, strict=False)
        return {"id": row.id, "inputs": decoded.inputs, "targets": targets}


class Collate:
    """Turns dataset items into a :class:`~mmfuse.types.Batch` (a class, so that workers can pickle it).

    Args:
        modalities: modality name -> the DataModule that collates its samples, in sorted name order.
        tasks: task name -> kind; multiclass targets become ``(B,)`` long, multilabel ``(B, K)``
            float and regression ``(B,)`` float tensors.
    """

    def __init__(self, modalities: Mapping[str, ModalityDataModule], tasks: Mapping[str, TaskKind]) -> None:
        self.modalities = dict(modalities)
        self.tasks = dict(tasks)

    def __call__(self, items: Sequence[Item | DataError]) -> Batch | DataError:
        for item in items:
            if isinstance(item, DataError):
                if get_worker_info() is None:
                    raise item  # already in the main process
                return item  # the main process raises it (MultimodalDataModule.on_before_batch_transfer)
        good = cast(Sequence[Item], items)
        inputs, present = {}, {}
        for name, dm in self.modalities.items():
            samples = [item["inputs"][name] for item in good]
            inputs[name] = dm.collate(samples)
            present[name] = torch.tensor([s is not None for s in samples], dtype=torch.bool)  # (B,)
        targets = {
            name: torch.tensor(
                [item["targets"][name] for item in good],
                dtype=torch.long if kind == "multiclass" else torch.float32,
            )  # (B,) or (B, K)
            for name, kind in self.tasks.items()
        }
        return Batch(inputs=inputs, present=present, targets=targets, ids=[item["id"] for item in good])
