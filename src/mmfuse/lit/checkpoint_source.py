"""Where a checkpoint comes from, and reading it without ever running code from it.

- **Always ``weights_only=True``.** Every checkpoint is read with ``torch.load(weights_only=True)``:
  tensors and plain containers only. A pickle that would run code (or rebuild an arbitrary object)
  is refused with :class:`CheckpointError`, whatever the path's scheme: local, ``http(s)://``,
  ``s3://``, ``gs://``. mmfuse's own checkpoints never need more.
- **Remote checkpoints** (any fsspec URL) are downloaded into a cache keyed by a hash of the *full*
  URL, ``$MMFUSE_CACHE/checkpoints/<hash>/<name>`` (default ``~/.cache/mmfuse/checkpoints``), so two
  runs' ``.../a/last.ckpt`` and ``.../b/last.ckpt`` never share a file. A cached copy is reused only
  while the server reports the same validators (ETag, Last-Modified, checksum) and size; otherwise it
  is downloaded again. ``s3://`` and ``gs://`` need fsspec's backends (``s3fs``, ``gcsfs``).
- **An unreadable checkpoint** (truncated, not a checkpoint) is an error naming the file and the other
  checkpoints beside it, so that another one can be picked.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import torch
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from mmfuse.data.manifest.tasks import TaskSpec

#: fsspec protocol -> the package that provides it (not a dependency of mmfuse)
BACKENDS = {
    "s3": "s3fs",
    "s3a": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
    "abfss": "adlfs",
    "hf": "huggingface_hub",
}
# what says that a remote file is unchanged, beside its size: HTTP headers (as fsspec reports them),
# S3's and GCS's object metadata
_VALIDATORS = (
    *("ETag", "Content-MD5", "Digest", "Last-Modified"),  # HTTP
    *("etag", "LastModified", "md5Hash", "generation"),  # S3, GCS
)
# Lightning's ckpt_path words that are not paths
_WORDS = ("best", "last", "hpc", "registry")
UNSAFE_OPT_OUT = (
    "weights_only=False is not supported: mmfuse reads every checkpoint with torch.load(weights_only=True), "
    "because full unpickling can run arbitrary code; mmfuse's own checkpoints never need it"
)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: refused as unsafe, unreadable, or unreachable. The message
    names the file (or URL) and what to do."""


def is_remote(path: str | os.PathLike[str]) -> bool:
    """True for a URL that is not a local file (``http(s)://``, ``s3://``, ``gs://``, ...)."""
    text = str(path)
    return "://" in text and text.split("://", 1)[0].lower() not in ("file", "local")


def is_path(ckpt_path: str | os.PathLike[str] | None) -> bool:
    """True if ``ckpt_path`` names a file or URL (not None, not one of Lightning's words like ``best``)."""
    return bool(ckpt_path) and str(ckpt_path) not in _WORDS


def cache_dir() -> Path:
    """Where remote checkpoints are downloaded: ``$MMFUSE_CACHE/checkpoints``, default
    ``~/.cache/mmfuse/checkpoints``."""
    root = os.environ.get("MMFUSE_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "mmfuse") / "checkpoints"


def require_weights_only(weights_only: bool | None) -> bool:
    """``True`` for None or True; an explicit False is refused.

    Raises:
        CheckpointError: ``weights_only`` is False.
    """
    if weights_only is False:
        raise CheckpointError(UNSAFE_OPT_OUT)
    return True


def local_checkpoint(path: str | os.PathLike[str], say: Callable[[str], None] | None = None) -> Path:
    """The local file of a checkpoint: ``path`` itself, or for a URL its copy in :func:`cache_dir`
    (downloaded now unless the cached copy is validated).

    Args:
        path: a local path, a ``file://`` URL, or a remote URL.
        say: where the "downloaded ... -> ..." line goes (default: printed by rank 0).

    Raises:
        CheckpointError: the URL cannot be reached, is not found, or its scheme needs a package
            that is not installed.
    """
    text = str(path)
    if not is_remote(text):
        return Path(text[len("file://") :] if text.startswith("file://") else text)
    return _fetch(text, say or _print)


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


@rank_zero_only
def _print(message: str) -> None:
    print(message, flush=True)


def _filesystem(url: str) -> tuple[Any, str]:
    from fsspec.core import url_to_fs

    protocol = url.split("://", 1)[0].lower()
    try:
        return url_to_fs(url)
    except ImportError as e:
        package = BACKENDS.get(protocol)
        hint = f"install {package} (pip install {package})" if package else str(e)
        raise CheckpointError(f"checkpoint {url}: reading {protocol}:// needs a package: {hint}") from None
    except ValueError as e:  # an unknown protocol
        raise CheckpointError(f"checkpoint {url}: {e}") from None


def _fetch(url: str, say: Callable[[str], None]) -> Path:
    fs, remote = _filesystem(url)
    try:
        info = fs.info(remote)
    except Exception as e:  # a refused connection, a timeout, an HTTP error: the network's many types
        # fsspec's HTTP reports every failure as FileNotFoundError: its cause tells a 404 from the rest
        cause = e.__cause__ if isinstance(e, FileNotFoundError) else e
        if cause is None or getattr(cause, "status", None) == 404:
            raise CheckpointError(f"checkpoint {url} not found (the server has no such file)") from None
        reason = f"{type(cause).__name__}: {cause}"
        raise CheckpointError(f"checkpoint {url} cannot be reached: {reason}") from None
    folder = cache_dir() / hashlib.sha256(url.encode()).hexdigest()[:32]
    target = folder / _file_name(url)
    record = folder / "source.json"
    size = info.get("size")
    validators = {k: str(info[k]) for k in _VALIDATORS if info.get(k)}
    if validators and target.is_file() and record.is_file():
        try:
            saved = json.loads(record.read_text())
        except ValueError:
            saved = {}
        same_size = size is None or target.stat().st_size == size
        if saved.get("url") == url and saved.get("validators") == validators and same_size:
            say(f"checkpoint: using cached {target} (from {url}, unchanged: {', '.join(validators)})")
            return target
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{target.name}.tmp{os.getpid()}"
    try:
        with fs.open(remote, "rb") as src, tmp.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        got = tmp.stat().st_size
        if size is not None and got != size:
            raise CheckpointError(f"checkpoint {url}: the download stopped after {got} of {size} bytes")
        os.replace(tmp, target)  # atomic: a concurrent reader sees the old copy or the new one
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"checkpoint {url}: the download failed: {type(e).__name__}: {e}") from None
    finally:
        tmp.unlink(missing_ok=True)
    _write_atomic(record, json.dumps({"url": url, "size": size, "validators": validators}, indent=2) + "\n")
    say(f"checkpoint: downloaded {url} -> {target}")
    return target


def _file_name(url: str) -> str:
    """The URL's last path segment, kept for the reader (the folder above is what keys the URL)."""
    name = Path(urlsplit(url).path).name
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    return name or "checkpoint.ckpt"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


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
