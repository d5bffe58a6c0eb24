"""Where a checkpoint comes from: a local file, or a URL downloaded once into a cache keyed by the URL.

- **Remote checkpoints** (any fsspec URL) are downloaded into a cache keyed by a hash of the *full*
  URL, ``$MMFUSE_CACHE/checkpoints/<hash>/<name>`` (default ``~/.cache/mmfuse/checkpoints``), so two
  runs' ``.../a/last.ckpt`` and ``.../b/last.ckpt`` never share a file. A cached copy is reused only
  while the server reports the same validators (ETag, Last-Modified, checksum) and size; otherwise it
  is downloaded again. ``s3://`` and ``gs://`` need fsspec's backends (``s3fs``, ``gcsfs``).

Reading the file, always with ``weights_only=True``, is :mod:`mmfuse.lit.safe_loading`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pytorch_lightning.utilities.rank_zero import rank_zero_only

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
