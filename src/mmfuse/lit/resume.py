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
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning_fabric.utilities.types import _PATH

from mmfuse.lit.checkpoint_source import local_checkpoint
from mmfuse.lit.safe_loading import load_checkpoint_file, require_weights_only


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to ``.<name>.tmp`` in the same folder, fsync, then ``os.replace`` onto the target.

    A rename within one filesystem is atomic: readers see the old file or the new one, never half
    of one. Remote paths (``s3://...``) fall back to Lightning's own writer.

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
    """Saves the CPU random states (torch, NumPy, Python) in checkpoints and restores them on resume.

    Stored as plain tensors and lists, so checkpoints still load with ``torch.load(weights_only=True)``.
    CUDA generators are saved too when CUDA is in use.
    """

    @property
    def state_key(self) -> str:
        return "RandomState"

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        state: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "numpy": [kind, torch.from_numpy(np.asarray(keys).astype(np.int64)), pos, has_gauss, cached],
            "python": random.getstate(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        kind, keys, pos, has_gauss, cached = state_dict["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        version, internal, gauss = state_dict["python"]
        random.setstate((version, tuple(internal), gauss))
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
