"""Reading a checkpoint without ever running code from it.

- **Always ``weights_only=True``.** Every checkpoint is read with ``torch.load(weights_only=True)``:
  tensors and plain containers only. A pickle that would run code (or rebuild an arbitrary object)
  is refused with :class:`~mmfuse.lit.checkpoint_source.CheckpointError`, whatever the path's scheme:
  local, ``http(s)://``, ``s3://``, ``gs://`` (fetched by :mod:`mmfuse.lit.checkpoint_source`).
  mmfuse's own checkpoints never need more.
- **An unreadable checkpoint** (truncated, not a checkpoint) is an error naming the file and the other
  checkpoints beside it, so that another one can be picked.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from collections.abc import MutableMapping
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from mmfuse.data.manifest.tasks import TaskSpec
from mmfuse.lit.checkpoint_source import CheckpointError, local_checkpoint

UNSAFE_OPT_OUT = (
    "weights_only=False is not supported: mmfuse reads every checkpoint with torch.load(weights_only=True), "
    "because full unpickling can run arbitrary code; mmfuse's own checkpoints never need it"
)


def require_weights_only(weights_only: bool | None) -> bool:
    """``True`` for None or True; an explicit False is refused.

    Raises:
        CheckpointError: ``weights_only`` is False.
    """
    if weights_only is False:
        raise CheckpointError(UNSAFE_OPT_OUT)
    return True


def load_checkpoint_file(
    path: str | os.PathLike[str], map_location: Any = None, source: str | None = None
) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` of a local checkpoint, with errors that say what to do.

    Args:
        path: the local file.
        map_location: as for ``torch.load``.
        source: what to call the checkpoint in messages (its URL when ``path`` is a download).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file holds objects that only full unpickling rebuilds (refused), or it
            cannot be read (truncated, not a checkpoint); the message lists the other checkpoints in
            its folder.
    """
    file = Path(path)
    name = source or str(file)
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint not found: {name}")
    try:
        # mmap: tensors are read when used (a zip checkpoint only; a truncated one is not a zip)
        mmap = zipfile.is_zipfile(file)
        checkpoint = torch.load(file, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        if "weights only load failed" not in str(e).lower():
            raise _unreadable(file, name, e) from None
        raise CheckpointError(
            f"checkpoint {name} was refused: it holds objects that torch.load(weights_only=True) does not "
            f"load ({_why_refused(e)}). Unpickling them could run arbitrary code, so mmfuse never does; "
            "an mmfuse checkpoint holds tensors and plain values only. Only if you trust its source and "
            "know what it holds, convert it yourself (torch.load(..., weights_only=False), then torch.save "
            "its state_dict)"
        ) from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError) as e:
        raise _unreadable(file, name, e) from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"checkpoint {name} holds a {type(checkpoint).__name__}, not a checkpoint")
    return checkpoint


def checkpoint_tasks(path: str | os.PathLike[str], source: str | None = None) -> list[TaskSpec] | None:
    """The tasks (name, kind, class names) the checkpoint's model was trained on, read safely; None
    when it does not record them (not a :class:`~mmfuse.lit.module.MultimodalModule` checkpoint)."""
    hparams = load_checkpoint_file(path, map_location="cpu", source=source).get("hyper_parameters") or {}
    tasks = hparams.get("tasks")
    if not isinstance(tasks, list):
        return None
    return [
        TaskSpec(name=t["name"], kind=t["kind"], names=[str(n) for n in t.get("names", [])]) for t in tasks
    ]


def restore_data_state(data: Any, path: str | os.PathLike[str], source: str | None = None) -> bool:
    """Give ``data`` what its class saved in the checkpoint (the learnt vocabulary, the class order),
    read safely: evaluation reads and sizes the data as training did, whatever the train split holds
    now. Returns False when the checkpoint holds no state for ``data``'s class."""
    state = load_checkpoint_file(path, map_location="cpu", source=source).get(type(data).__qualname__)
    if not isinstance(state, dict):
        return False
    data.load_state_dict(state)
    return True


def other_checkpoints(file: Path) -> list[str]:
    """The names of the other ``*.ckpt`` files in ``file``'s folder, sorted."""
    folder = file.parent
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.glob("*.ckpt") if p.name != file.name and p.is_file())


def _unreadable(file: Path, name: str, error: BaseException) -> CheckpointError:
    reason = str(error).split(". ", 1)[0].strip() or type(error).__name__
    others = other_checkpoints(file)
    if others:
        pick = f"other checkpoints in {file.parent}: {', '.join(others)} (pass one with --ckpt_path)"
    else:
        pick = f"there is no other checkpoint in {file.parent}"
    return CheckpointError(
        f"checkpoint {name} cannot be read: it is truncated or not a checkpoint ({reason}); {pick}"
    )


def _why_refused(error: BaseException) -> str:
    match = re.search(r"WeightsUnpickler error: ([^\n]*?\.)(\s|$)", str(error))
    return match.group(1) if match else str(error).splitlines()[0]


class SafeLoading:
    """Mixin for a LightningModule: ``load_from_checkpoint`` reads with ``weights_only=True`` whatever
    the path's scheme, a URL through :func:`local_checkpoint`'s cache, with this module's errors."""

    @classmethod
    def load_from_checkpoint(
        cls,
        checkpoint_path: str | os.PathLike[str] | IO[bytes],
        map_location: Any = None,
        hparams_file: str | os.PathLike[str] | None = None,
        strict: bool | None = None,
        weights_only: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """Lightning's ``load_from_checkpoint`` (same arguments), safe for any source.

        Raises:
            CheckpointError: ``weights_only=False``, or the checkpoint is refused, unreadable or
                unreachable.
        """
        require_weights_only(weights_only)
        path: Any = checkpoint_path
        if isinstance(checkpoint_path, str | os.PathLike):
            path = local_checkpoint(checkpoint_path)
            load_checkpoint_file(path, map_location="cpu", source=str(checkpoint_path))  # clear errors first
        load = super().load_from_checkpoint  # type: ignore[misc]
        return load(path, map_location, hparams_file, strict, weights_only=True, **kwargs)


def drop_live_hyperparameters(hparams: MutableMapping[str, Any]) -> None:
    """Remove the hyper-parameters that are live objects, so that the checkpoint stays plain.

    Under the CLI a module's hyper-parameters are the plain config (class paths and init args), which
    ``load_from_checkpoint`` re-instantiates. Built in Python, some are live objects (an encoder, the
    optimizer's factory) that only full unpickling could read back: they are dropped, so every
    checkpoint still loads with ``torch.load(weights_only=True)``.
    """
    for key in [k for k, v in hparams.items() if isinstance(v, nn.Module | dict) and _has_live(v)]:
        hparams.pop(key)
    for key in [k for k, v in hparams.items() if callable(v)]:  # optimizer / scheduler factories
        hparams.pop(key)


def _has_live(value: Any) -> bool:
    """True if a hyper-parameter value holds an nn.Module (not a plain config dict)."""
    if isinstance(value, nn.Module):
        return True
    if isinstance(value, dict):
        return any(_has_live(v) for v in value.values())
    return False
