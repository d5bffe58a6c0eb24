"""Share a node's CPU cores between the model's threads and the data loader's workers."""

from __future__ import annotations

import os

import torch
from pytorch_lightning.utilities import rank_zero_info


def available_cores() -> int:
    """The cores this process may run on (a SLURM or container CPU limit included), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def model_threads(num_workers: int, processes_per_node: int = 1) -> int:
    """The model's threads in one of ``processes_per_node`` processes with ``num_workers`` loader
    workers each: the process's share of the cores less one per worker, at least 1."""
    return max(1, available_cores() // max(1, processes_per_node) - num_workers)


def share_cores(num_workers: int, processes_per_node: int = 1) -> int:
    """Lower this process's intra-op threads so that it and its loader workers fit its share of the cores.

    Each training process on a node gets ``cores // processes_per_node`` cores; its ``num_workers``
    loader workers (one thread each: PyTorch sets that in workers) take one of them each, and the
    model's ops get the rest, at least 1. Without this, PyTorch's default of one thread per core
    plus the workers oversubscribe the cores, and its threads spin waiting for each other: on a
    2-core machine with 2 workers a small model trained 4x slower (docs/results-real-data.md).

    Only ever lowers ``torch.get_num_threads()`` (an ``OMP_NUM_THREADS`` below the share is kept).

    Returns:
        The threads this process now uses.
    """
    share = model_threads(num_workers, processes_per_node)
    if share < torch.get_num_threads():
        processes = f", {processes_per_node} processes on this node" if processes_per_node > 1 else ""
        rank_zero_info(
            f"CPU threads: the model uses {share} ({available_cores()} cores{processes}, "
            f"{num_workers} loader workers per process); OMP_NUM_THREADS can set fewer"
        )
        torch.set_num_threads(share)
    return torch.get_num_threads()
