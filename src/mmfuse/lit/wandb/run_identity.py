"""Which W&B run a checkpoint or a run directory belongs to, so that a resume continues it and an
evaluation joins its group."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

#: key of the run's identity in every checkpoint (written by ``RunFacts``)
CHECKPOINT_KEY = "wandb_run"
#: the run's identity, in its run directory
RUN_FILE = "wandb_run.json"


def stored_run_id(ckpt_path: str | os.PathLike[str]) -> str | None:
    """The W&B run id a checkpoint was written by, or None (read without loading its tensors)."""
    path = Path(ckpt_path)
    if not path.is_file():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        run_id = (ckpt.get(CHECKPOINT_KEY) or {}).get("id")
    except Exception:  # an old or foreign checkpoint: fall back to the run directory
        run_id = None
    if not run_id:
        info = path.parent.parent / RUN_FILE  # <run dir>/checkpoints/x.ckpt
        if info.is_file():
            run_id = json.loads(info.read_text()).get("id")
    return str(run_id) if run_id else None


def read_run_file(run_dir: Path | None) -> dict[str, Any] | None:
    """The W&B identity (id, project, group, name, ...) a run directory's ``wandb_run.json`` holds."""
    path = run_dir / RUN_FILE if run_dir is not None else None
    if path is None or not path.is_file():
        return None
    info = json.loads(path.read_text())
    return info if isinstance(info, dict) else None


def is_live(run: Any) -> bool:
    """True for a real, running W&B run (not disabled, not a non-zero rank's dummy)."""
    settings = getattr(run, "settings", None)
    return settings is not None and getattr(settings, "mode", "") != "disabled" and hasattr(run, "dir")


def write_run_file(run: Any, run_dir: Path) -> None:
    """Record ``run``'s identity in ``<run_dir>/wandb_run.json`` (read back by :func:`read_run_file`)."""
    info = {
        "id": run.id,
        "project": run.project,
        "entity": run.entity or None,
        "name": run.name,
        "group": run.group or None,
        "job_type": run.job_type or None,
        "url": None if run.offline else run.url,
        "wandb_dir": str(Path(run.dir).parent),
    }
    out = run_dir / RUN_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(info, indent=2) + "\n")
