"""A generated dataset's folder: written into a temporary sibling, published by one atomic rename.

A dataset generated on first use (the synthetic sources) must never look complete when it is not:
an interrupted run, or two processes generating at once (DDP, a notebook beside a training run),
leave either the whole dataset or none. ``params.json`` records what was generated, so a changed
generator or parameter regenerates it, and a folder without it is never deleted.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PARAMS_FILE = "params.json"
MANIFEST_FILE = "manifest.csv"


def _read_params(root: Path) -> dict[str, Any] | None:
    try:
        params = json.loads((root / PARAMS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return params if isinstance(params, dict) else None


def is_complete(root: Path, params: dict[str, Any]) -> bool:
    """Whether ``root`` holds the dataset generated with exactly ``params``."""
    return (root / MANIFEST_FILE).is_file() and _read_params(root) == params


def _check_replaceable(root: Path) -> None:
    # never delete a folder this module did not write (e.g. root="data" by mistake)
    if root.exists() and (not root.is_dir() or (any(root.iterdir()) and not (root / PARAMS_FILE).is_file())):
        raise FileExistsError(f"{root} exists and is not a synthetic dataset (no {PARAMS_FILE}): remove it")


def _publish(tmp: Path, root: Path, params: dict[str, Any]) -> None:
    """Move the finished ``tmp`` folder to ``root`` atomically, replacing an out-of-date dataset."""
    for _ in range(5):
        try:
            tmp.rename(root)  # atomic; fails while root exists (and is not empty)
            return
        except OSError:
            if not root.exists():
                raise
        if is_complete(root, params):
            shutil.rmtree(tmp)  # another process published the same dataset first: keep theirs
            return
        _check_replaceable(root)
        old = root.with_name(f".{root.name}.old-{uuid.uuid4().hex}")
        try:
            root.rename(old)  # out of the way in one step, so readers never see a half-deleted root
        except FileNotFoundError:
            continue  # another process moved it first
        shutil.rmtree(old, ignore_errors=True)
    raise RuntimeError(f"could not move the generated dataset {tmp} to {root}: it keeps being replaced")


@contextmanager
def staged_dataset(
    root: Path, params: dict[str, Any], what: str, subfolders: Sequence[str]
) -> Iterator[Path]:
    """A temporary sibling folder of ``root`` to write a generated dataset into.

    On success its ``params.json`` is written last and the folder renamed into place (replacing an
    out-of-date synthetic dataset), so an interrupted run never leaves a dataset that looks complete;
    on any failure, Ctrl-C included, the folder is removed. Prints the start and the time taken.

    Raises:
        FileExistsError: ``root`` exists and holds something other than a synthetic dataset.
    """
    _check_replaceable(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    print(f"mmfuse: generating {params['num_samples']} synthetic {what} in {root} ...", flush=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.tmp-"))
    try:
        for sub in subfolders:
            (tmp / sub).mkdir()
        yield tmp
        (tmp / PARAMS_FILE).write_text(json.dumps(params, indent=2) + "\n", encoding="utf-8")
        _publish(tmp, root, params)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"mmfuse: wrote {params['num_samples']} samples to {root} in {time.perf_counter() - start:.1f} s")
