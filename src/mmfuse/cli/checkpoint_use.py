"""A command's checkpoint (``--ckpt_path``, or the one ``ablate`` evaluates): made safe and local, and,
when evaluating, where the model's tasks come from."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from mmfuse.data.manifest.source import ManifestSource
from mmfuse.data.manifest.tasks import TaskSpec
from mmfuse.lit.checkpoint_source import CheckpointError, is_path, is_remote, local_checkpoint
from mmfuse.lit.safe_loading import checkpoint_tasks, load_checkpoint_file, require_weights_only


class CommandCheckpoint(NamedTuple):
    """The checkpoint a command uses."""

    source: str | None
    """as given (``last`` resolved): a URL stays a URL in messages"""
    file: str | None
    """its local file (a URL's copy in the cache); None without a checkpoint"""
    tasks: list[TaskSpec] | None
    """when evaluating, the tasks its model was trained on (None: the data's)"""


def use_checkpoint(config: Any, ckpt: str | None, evaluate: bool) -> CommandCheckpoint:
    """Make the checkpoint safe to load, and take the tasks from it when evaluating.

    ``weights_only`` is forced to True; a URL is replaced by its local copy in the cache, downloaded
    here once per command (DDP processes started later find the copy validated, not a new download);
    when evaluating (``validate``/``test``/``predict``/``ablate``) the model's tasks are the
    checkpoint's, read before the data is built.

    Args:
        config: the subcommand's parsed config; its ``weights_only`` and ``ckpt_path`` are set in place.
        ckpt: the checkpoint, ``last`` resolved to a path already; None: no checkpoint.
        evaluate: whether the command evaluates the checkpoint (not ``fit``, which resumes from it).

    Raises:
        CheckpointError: ``weights_only=False``, or the checkpoint is refused, unreadable or unreachable.
    """
    if "weights_only" in config:
        config.weights_only = require_weights_only(config.get("weights_only"))
    if ckpt is None or not is_path(ckpt):
        return CommandCheckpoint(ckpt, None, None)
    file = str(local_checkpoint(ckpt))
    if config.get("ckpt_path") is not None:
        config.ckpt_path = file
    # read now (safely, tensors memory-mapped): a refused or truncated file stops the command before
    # the data and model are built, named as given (a URL, not its copy in the cache)
    tasks = checkpoint_tasks(file, source=ckpt)
    return CommandCheckpoint(ckpt, file, tasks if evaluate else None)


def read_local_checkpoint(ckpt_path: str | None) -> None:
    """Read a local checkpoint once, safely, so that a refused or truncated file is named clearly
    (Lightning reads its hyper-parameters first, with torch's raw errors)."""
    if ckpt_path and is_path(ckpt_path) and not is_remote(ckpt_path) and Path(ckpt_path).is_file():
        load_checkpoint_file(ckpt_path, map_location="cpu")


def tasks_for_data(data: Any, tasks: list[TaskSpec], source: str | None) -> list[TaskSpec]:
    """Give the checkpoint's ``tasks`` to ``data`` (a manifest reads its targets in their class order)
    and return them.

    Raises:
        CheckpointError: the data cannot give those tasks, or gives others.
    """
    manifest = getattr(data, "source", None)
    if isinstance(manifest, ManifestSource):
        try:
            manifest.use_tasks(tasks)
        except ValueError as e:
            raise CheckpointError(f"checkpoint {source}: {e}") from None
    have = [dict(t) for t in data.tasks]
    if have != [dict(t) for t in tasks]:
        raise CheckpointError(
            f"checkpoint {source} was trained on the tasks {tasks}, but the data has {have}"
        )
    return tasks
