"""Samplers and a DataLoader that make distributed evaluation exact and mid-epoch resume exact.

- Evaluation under DDP: PyTorch's ``DistributedSampler`` pads a split with repeated samples so
  that every process gets the same count; metrics then count those samples twice. Here each
  process gets every ``world_size``-th sample and nothing is repeated, so the metrics synced
  across processes equal the single-process ones.
- Training: the order is a permutation seeded by ``(seed, epoch)``, so it does not depend on
  how many random numbers anything else drew, and :class:`ResumableDataLoader` remembers how
  many batches of the epoch were consumed, so a resumed run continues with the next batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

SampleKey = tuple[int, int]  # (augmentation seed, dataset index)


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A seed for one sample's train-time augmentation: the same whatever process or worker decodes it."""
    digest = hashlib.blake2b(f"{seed}:{epoch}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1  # a non-negative int64


class ShardSampler(DistributedSampler):
    """Every process gets a disjoint shard of the dataset; together they cover it exactly once.

    Subclassing ``DistributedSampler`` tells Lightning not to replace it with its own (padding) one.

    Args:
        size: dataset length.
        shuffle: permute with a generator seeded by ``(seed, epoch)`` (train); else keep file order.
        seed: base seed of the permutation and of per-sample augmentation seeds.
        even: drop nothing but repeat samples so that every process gets the same number (train
            under DDP, where processes must run the same number of optimizer steps); evaluation
            uses ``even=False`` so that no sample is counted twice.
        num_replicas: number of processes (default: the distributed world size, else 1).
        rank: this process's rank (default: from torch.distributed, else 0).
    """

    def __init__(
        self,
        size: int,
        shuffle: bool,
        seed: int = 0,
        even: bool = False,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        world, this = _world()
        self.size = size
        self.num_replicas = world if num_replicas is None else num_replicas
        self.rank = this if rank is None else rank
        self.shuffle = shuffle
        self.seed = seed
        self.even = even
        self.epoch = 0
        self.skip = 0  # samples of this shard to skip once, when resuming mid-epoch
        self.drop_last = False

    def _indices(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        if self.even and self.num_replicas > 1:
            total = -(-self.size // self.num_replicas) * self.num_replicas
            order += order[: total - self.size]  # the first samples again, as DistributedSampler does
        return order[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[Any]:
        indices = self._indices()[self.skip :]
        self.skip = 0
        if not self.shuffle:
            return iter(indices)
        # train: each index travels with its own augmentation seed (see sample_seed)
        return iter([(sample_seed(self.seed, self.epoch, i), i) for i in indices])

    def __len__(self) -> int:
        if self.even:
            return -(-self.size // self.num_replicas)
        return len(range(self.rank, self.size, self.num_replicas))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


class ResumableDataLoader(DataLoader):
    """A DataLoader whose ``state_dict`` is the number of batches consumed in the current epoch.

    Lightning saves it in every checkpoint and, on resume, hands it back through
    ``load_state_dict``: the sampler then skips the consumed samples (without decoding them).
    Batches are yielded in sampler order also with workers, so "yielded" is "consumed".
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, ShardSampler) or self.batch_size is None:
            raise TypeError("ResumableDataLoader needs a ShardSampler and a batch_size")
        self._epoch = 0
        self._yielded = 0
        self._resume: tuple[int, int] | None = None  # (epoch, batches) from a checkpoint

    @property
    def shard_sampler(self) -> ShardSampler:
        assert isinstance(self.sampler, ShardSampler)
        return self.sampler

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        sampler = self.shard_sampler
        self._epoch, self._yielded = sampler.epoch, 0
        if self._resume is not None:
            epoch, batches = self._resume
            self._resume = None
            if epoch == sampler.epoch:  # a checkpoint from the end of an epoch skips nothing
                sampler.skip = batches * int(self.batch_size or 1)
                self._yielded = batches
        for batch in super().__iter__():
            self._yielded += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self._epoch, "batches": self._yielded}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._resume = (int(state_dict["epoch"]), int(state_dict["batches"]))
