"""What makes a resumed run continue exactly where the interrupted one stopped.

- :class:`AtomicCheckpointIO` writes each checkpoint to a temporary file and renames it into
  place, so a crash while saving never leaves a truncated ``last.ckpt`` for resume to pick; it reads
  every checkpoint with ``weights_only=True``, a URL through mmfuse's cache
  (:mod:`mmfuse.lit.checkpoint_source`).
- :class:`RandomState` saves the random number generators' states with every checkpoint and
  restores them on resume, so dropout draws the same masks as in an uninterrupted run.
- ``--ckpt_path last`` is resolved by :func:`mmfuse.lit.run_directory.find_last_checkpoint`, and
  ``last.ckpt`` is kept the newest state by :class:`mmfuse.lit.checkpoint.RunCheckpoint`.

The data order is restored by the train DataLoader itself (``mmfuse.data.sampling``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning_fabric.utilities.seed import _collect_rng_states, _set_rng_states
from lightning_fabric.utilities.types import _PATH

from mmfuse.lit.checkpoint_source import local_checkpoint
from mmfuse.lit.safe_loading import load_checkpoint_file, require_weights_only


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to ``.<name>.tmp`` in the same folder, fsync, then ``os.replace`` onto the target.

    A rename within one filesystem is atomic: readers see the old file or the new one, never half
    of one. Remote paths (``s3://...``) fall back to Lightning's own writer. Local paths do not:
    Lightning 2.6's ``_atomic_save`` holds the whole checkpoint in memory twice and writes it to a
    temporary file in ``$TMPDIR`` (fsspec's local transaction), then moves it (``shutil.move``); where
    ``$TMPDIR`` is another filesystem (a node's local disk, runs on a shared one) that move is a copy,
    which a killed job leaves half-written, and nothing is fsynced.

    Loading is always ``torch.load(weights_only=True)``, whatever the scheme (Lightning's own loader
    unpickles ``http(s)://`` paths fully, and caches them by file name alone): a URL is first fetched
    into mmfuse's cache, keyed by the whole URL. An unreadable file is an error naming it and the
    other checkpoints beside it.
    """

    def load_checkpoint(
        self,
        path: _PATH,
        map_location: Callable[..., Any] | None = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        require_weights_only(weights_only)
        return load_checkpoint_file(local_checkpoint(path), map_location, source=str(path))

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
        try:
            with tmp.open("wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)


class RandomState(pl.Callback):
    """Saves the random states (torch, NumPy, Python; CUDA when in use) in checkpoints and restores
    them on resume.

    Lightning's own collectors (``lightning_fabric.utilities.seed``); the Trainer itself saves no random
    state in a checkpoint (Lightning 2.6 uses them only to start spawned processes). NumPy's state is
    kept as a tensor, so checkpoints still load with ``torch.load(weights_only=True)``.
    """

    @property
    def state_key(self) -> str:
        return "RandomState"

    def state_dict(self) -> dict[str, Any]:
        # CUDA's generators only where CUDA is initialised: reading them would start CUDA in a CPU run
        state = _collect_rng_states(include_cuda=torch.cuda.is_available() and torch.cuda.is_initialized())
        kind, keys, pos, has_gauss, cached = state["numpy"]
        state["numpy"] = [kind, torch.from_numpy(np.asarray(keys).astype(np.int64)), pos, has_gauss, cached]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        kind, keys, pos, has_gauss, cached = state["numpy"]
        state["numpy"] = (kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached)
        cuda = state.pop(
            "torch.cuda", state.pop("cuda", None)
        )  # "cuda": the key of earlier mmfuse checkpoints
        if cuda is not None and torch.cuda.is_available():
            state["torch.cuda"] = cuda
        _set_rng_states(state)
