"""One split as a PyTorch Dataset (each item: one row, every modality decoded) and the collate
function that stacks items into a :class:`~mmfuse.types.Batch`."""

from __future__ import annotations

import io
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
    After :meth:`keep_in_memory`, items that decode the same every time are served from memory.
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
        self._memory: list[Item | None] | None = None  # index -> its kept item (see keep_in_memory)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: int | SampleKey) -> Item | DataError:
        index = key[1] if isinstance(key, tuple) else key
        if self._memory is not None and (kept := self._memory[index]) is not None:
            return kept
        if isinstance(key, tuple):
            return self._seeded(*key)[0]
        return self._item(key)

    def _seeded(self, seed: int, index: int) -> tuple[Item | DataError, bool]:
        """The item decoded with torch's generator seeded by ``seed``, and whether decoding drew from it."""
        # train-time augmentation draws from a generator seeded per sample: the same result in
        # any worker and after any resume, and the main process's random stream is left alone
        with torch.random.fork_rng(devices=[]):
            # the CPU generator only (what augmentation draws from): torch.manual_seed would also
            # reseed every CUDA device (not restored by fork_rng) and costs ~20x more per sample
            torch.default_generator.manual_seed(seed)
            start = torch.default_generator.get_state()
            item = self._item(index)
            return item, not torch.equal(start, torch.default_generator.get_state())

    def keep_in_memory(self) -> tuple[int, int]:
        """Decode every row now and keep the items that decode the same every time.

        Kept: every item of an evaluation split, and a train item whose decoding drew no random number
        (no augmentation applied to it; modalities draw their augmentation from torch's generator).
        The others are decoded again each time, as without this. Workers started after this call
        share the kept items (fork) or receive a copy (spawn).

        Returns:
            how many items are kept, and their tensors' bytes.

        Raises:
            DataError: the first bad row, at once (``on_bad_sample: skip`` has left them out already).
        """
        memory: list[Item | None] = []
        for index in range(len(self)):
            # any seed tells: a sample's decoding draws whatever the seed, or never
            item, drew = self._seeded(0, index) if self.train else (self._item(index), False)
            if isinstance(item, DataError):
                raise item
            memory.append(None if drew else item)
        self._memory = memory
        return len(memory) - memory.count(None), sum(
            tensor.nbytes
            for item in memory
            if item is not None
            for sample in item["inputs"].values()
            if sample is not None
            for tensor in sample.values()
        )

    def __getstate__(self) -> dict[str, Any]:
        # workers started by spawn (macOS, Windows) receive the dataset pickled: the kept items travel
        # as one serialized blob, where torch's pickler would share each tensor through a file
        # descriptor of its own (thousands of them: "too many open files")
        state = dict(self.__dict__)
        if self._memory is not None:
            blob = io.BytesIO()
            torch.save(self._memory, blob)
            state["_memory"] = blob.getvalue()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state["_memory"], bytes):
            state["_memory"] = torch.load(io.BytesIO(state["_memory"]), weights_only=True)
        self.__dict__.update(state)

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
