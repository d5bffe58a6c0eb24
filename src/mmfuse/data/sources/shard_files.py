"""WebDataset shard files: expanding their patterns, indexing their members, reading one member.

A shard is an uncompressed tar whose members are grouped into samples by key: ``a/b/000123.jpg``,
``a/b/000123.txt`` and ``a/b/000123.json`` are the members ``jpg``, ``txt`` and ``json`` of sample
``a/b/000123`` (the key is the member path up to the first dot of its file name, as WebDataset reads
it). Members of one sample must be adjacent (WebDataset's rule); a key seen again after another
sample is a problem of the shard.

Shards are opened with fsspec, so a URL (``s3://``, ``gs://``, ``https://``) reads like a local path
once its fsspec backend is installed. One sample's member is read by its byte offset: local files with
``os.pread`` on a descriptor kept open per process, remote ones with a ranged read.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
from braceexpand import braceexpand


@dataclass(frozen=True)
class Member:
    """Where one member's bytes are inside its shard: ``size`` bytes from ``offset``."""

    name: str
    offset: int
    size: int


@dataclass
class ShardSample:
    """One sample of a shard: its key and its members by extension."""

    key: str
    members: dict[str, Member]


def expand(pattern: str) -> list[str]:
    """The shard URLs of a brace pattern: ``train-{000000..000002}.tar`` -> three names, in order;
    several patterns may be separated by spaces."""
    return [url for part in pattern.split() for url in braceexpand(part)]


def is_local(url: str) -> bool:
    """True for a path on this machine (no scheme, or ``file://``)."""
    return "://" not in url or url.startswith("file://")


def local_path(url: str) -> str:
    return url[len("file://") :] if url.startswith("file://") else url


def split_name(name: str) -> tuple[str, str]:
    """``a/b/000123.seg.png`` -> (``a/b/000123``, ``seg.png``): WebDataset's key and extension."""
    folder, _, base = name.rpartition("/")
    stem, dot, extension = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), (extension.lower() if dot else "")


def scan(url: str, small: set[str]) -> Iterator[tuple[ShardSample, dict[str, bytes]]]:
    """Index one shard: each sample in file order, with the bytes of its members whose extension is in
    ``small`` (text, JSON: what the index itself needs). Media members are located, not read.

    Raises:
        OSError: the shard cannot be opened or read.
        tarfile.TarError: it is not an uncompressed tar (random access needs one), or is truncated.
        ValueError: a sample's members are not adjacent (the key comes back later in the shard).
    """
    # "r:" = uncompressed only: a compressed shard cannot be read by offset
    with fsspec.open(url, "rb") as f, tarfile.open(fileobj=f, mode="r:") as tar:
        seen: set[str] = set()
        current: ShardSample | None = None
        small_bytes: dict[str, bytes] = {}
        for info in tar:
            if not info.isfile():
                continue
            key, extension = split_name(info.name)
            if current is None or key != current.key:
                if current is not None:
                    yield current, small_bytes
                if key in seen:
                    raise ValueError(
                        f"members of sample {key!r} are not adjacent ({info.name} comes after other "
                        "samples): write each sample's members together, as WebDataset expects"
                    )
                seen.add(key)
                current, small_bytes = ShardSample(key, {}), {}
            current.members[extension] = Member(info.name, info.offset_data, info.size)
            if extension in small:
                handle = tar.extractfile(info)
                small_bytes[extension] = handle.read() if handle is not None else b""
        if current is not None:
            yield current, small_bytes


class MemberReader:
    """Reads members by offset, keeping each shard open once per process (a worker after ``fork``
    opens its own: a descriptor shared across processes would share its file position)."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._local: dict[str, int] = {}
        self._remote: dict[str, Any] = {}
        self.opened = 0  # shards opened by this process: what a benchmark counts

    def read(self, url: str, member: Member) -> bytes:
        if os.getpid() != self._pid:
            self._reset()  # forked: the parent's descriptors are not this process's
        if is_local(url):
            fd = self._local.get(url)
            if fd is None:
                fd = self._local[url] = os.open(local_path(url), os.O_RDONLY)
                self.opened += 1
            data = os.pread(fd, member.size, member.offset)
        else:
            handle = self._remote.get(url)
            if handle is None:
                handle = self._remote[url] = fsspec.open(url, "rb").open()
                self.opened += 1
            handle.seek(member.offset)
            data = handle.read(member.size)
        if len(data) != member.size:
            raise OSError(f"read {len(data)} of {member.size} bytes (the shard changed or is truncated)")
        return data

    def __getstate__(self) -> dict[str, Any]:
        return {}  # descriptors never travel to another process

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._reset()


#: one reader per process, shared by every dataset of that process
READER = MemberReader()
