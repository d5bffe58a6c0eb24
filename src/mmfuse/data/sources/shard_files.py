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

BLOCK = tarfile.BLOCKSIZE  # 512: a tar header


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


def header_problem(header: bytes, member: Member) -> str:
    """Why the 512-byte tar header before a member's data does not describe that member ("" if it does)."""
    if _plain_header_matches(header, member):
        return ""  # the common case, checked in ~2 µs; tarfile's parse below costs ~20 µs a member
    try:
        info = tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")
    except tarfile.HeaderError as e:
        return f"no tar header before {member.name} at byte {member.offset} ({e})"
    # a pax header before this one holds a name that is long or not ASCII; this one has its ASCII form
    ascii_name = member.name.encode("ascii", "replace").decode("ascii")
    long_name = (
        len(member.name.encode()) > 99
        and len(info.name) >= 40
        and any(n.startswith(info.name[:40]) for n in (member.name, ascii_name))
    )
    if (info.name not in (member.name, ascii_name) and not long_name) or info.size != member.size:
        found, wanted = f"{info.name} ({info.size} bytes)", f"{member.name} ({member.size} bytes)"
        return f"byte {member.offset} holds {found}, not {wanted}"
    return ""


def _plain_header_matches(header: bytes, member: Member) -> bool:
    """True when ``header`` is a valid tar header (checksum) whose name field holds exactly the
    member's name, with no ustar prefix, and whose size field its size. False says nothing: the
    header may still describe the member in a form this does not read (a long or non-ASCII name in a
    pax header before it, a size in base-256), which :func:`header_problem` then parses in full."""
    name = member.name.encode("utf-8")
    if len(header) != BLOCK or len(name) >= 100 or header[: len(name) + 1] != name + b"\0" or header[345]:
        return False
    try:
        size, checksum = int(header[124:136].strip(b"\0 "), 8), int(header[148:156].strip(b"\0 "), 8)
    except ValueError:
        return False
    # the checksum is the sum of the header's bytes with its own field read as 8 spaces
    return size == member.size and checksum == sum(header) - sum(header[148:156]) + 8 * 32


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
        """A member's bytes, read with the tar header just before them, which must still name that
        member: a shard replaced or rewritten since it was indexed raises instead of giving other bytes.

        Raises:
            OSError: the shard cannot be read, or no longer holds the member where it was indexed.
        """
        header = min(member.offset, BLOCK)  # a member's data always follows its 512-byte header
        data = self.read_range(url, member.offset - header, member.size + header)
        if len(data) != member.size + header:
            raise OSError(
                f"read {len(data) - header} of {member.size} bytes (the shard changed or is truncated)"
            )
        problem = header_problem(data[:header], member)
        if problem:
            raise OSError(f"the shard changed since it was indexed: {problem}")
        return data[header:]

    def read_range(self, url: str, offset: int, size: int) -> bytes:
        """``size`` bytes from ``offset`` (fewer at the end of the shard)."""
        if os.getpid() != self._pid:
            self._reset()  # forked: the parent's descriptors are not this process's
        if is_local(url):
            return os.pread(self._fd(url), size, offset)
        handle = self._handle(url)
        handle.seek(offset)
        return bytes(handle.read(size))

    def size(self, url: str) -> int:
        """The shard's size in bytes."""
        if os.getpid() != self._pid:
            self._reset()
        if is_local(url):
            return os.fstat(self._fd(url)).st_size
        handle = self._handle(url)
        return int(handle.seek(0, os.SEEK_END))

    def _fd(self, url: str) -> int:
        fd = self._local.get(url)
        if fd is None:
            fd = self._local[url] = os.open(local_path(url), os.O_RDONLY)
            self.opened += 1
        return fd

    def _handle(self, url: str) -> Any:
        handle = self._remote.get(url)
        if handle is None:
            handle = self._remote[url] = fsspec.open(url, "rb").open()
            self.opened += 1
        return handle

    def forget(self, url: str) -> None:
        """Close the shard, so that the next read opens it again (it was replaced: a new file)."""
        fd = self._local.pop(url, None)
        if fd is not None:
            os.close(fd)
        handle = self._remote.pop(url, None)
        if handle is not None:
            handle.close()

    def __getstate__(self) -> dict[str, Any]:
        return {}  # descriptors never travel to another process

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._reset()


#: one reader per process, shared by every dataset of that process
READER = MemberReader()
