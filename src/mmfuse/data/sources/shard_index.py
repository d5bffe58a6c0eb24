"""The index beside a shard: what scanning it finds, written once, then read in one go instead.

``train-000000.tar`` has its index in ``train-000000.tar.idx``, JSON lines. The first line says what the
index describes: the shard's size in bytes, the SHA-1 of its first 512 bytes (the first member's tar
header: name, size, mtime) and which members' text the index holds (``inline``)::

    {"format": "mmfuse-shard-index", "version": 1, "shard_size": 30720, "head": "6f1c...",
     "inline": ["json", "txt"], "samples": 2}

then one line per sample in shard order: its key, its members (extension -> ``[offset, size]``, the
member's name third where it is not ``key.extension``) and the text of its inline members::

    ["000123", {"jpg": [1536, 5321], "json": [7680, 16], "txt": [8704, 16]},
     {"json": "{\\"label\\": \\"cat\\"}", "txt": "a photo of a cat"}]

JSON lines, not a binary array file: the text and JSON members are strings (which arrays hold badly),
the standard library's C parser reads the whole index in one call (about 10 µs of CPU a sample, all
told, against 100 µs to scan its tar headers in Python: ``benchmarks/shards.py --index``), and an index
can be read with ``head``. About 100 bytes a sample beyond its text.

An index is used only if it still describes its shard: same size, same first header, and the headers
of its first, middle and last members where it says. Modification times are not used: a copy changes
them. Past that check, every member read verifies the header before its bytes (:class:`MemberReader`),
so a stale index never gives another member's bytes; what the check cannot see is a member rewritten in
place with the same size (a label of the same length): re-index after editing a shard in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tarfile
from collections.abc import Collection
from typing import Any

import fsspec

from mmfuse.data.sources.shard_files import BLOCK, READER, Member, ShardSample, header_problem, scan

FORMAT, VERSION = "mmfuse-shard-index", 1
SUFFIX = ".idx"

#: what a shard yields: each sample and the bytes of its small members
Samples = list[tuple[ShardSample, dict[str, bytes]]]


def index_url(url: str) -> str:
    """The index of a shard: ``train-000000.tar`` -> ``train-000000.tar.idx``."""
    return url + SUFFIX


def _identity(url: str) -> tuple[int, str]:
    """(size in bytes, SHA-1 of the first 512 bytes) of the shard as it is now."""
    return READER.size(url), hashlib.sha1(READER.read_range(url, 0, BLOCK)).hexdigest()


def write_index(url: str, inline: Collection[str]) -> int:
    """Scan a shard and write its index beside it; returns the number of samples.

    Args:
        url: the shard (a path or fsspec URL); the index is written to ``url + ".idx"``.
        inline: extensions whose member's text the index holds (what loading reads whole: ``txt``,
            ``json``); a member that is not UTF-8 is left out, and read from the shard when needed.

    Raises:
        OSError, tarfile.TarError, ValueError: as :func:`~mmfuse.data.sources.shard_files.scan`.
    """
    READER.forget(url)  # a shard just written: nothing cached from an earlier one
    size, head = _identity(url)
    samples = list(scan(url, set(inline)))
    header = {"format": FORMAT, "version": VERSION, "shard_size": size, "head": head}
    header.update(inline=sorted(inline), samples=len(samples))
    lines = [json.dumps(header)]
    for sample, contents in samples:
        members: dict[str, list[Any]] = {}
        for extension, member in sample.members.items():
            where: list[Any] = [member.offset, member.size]
            if member.name != f"{sample.key}.{extension}":
                where.append(member.name)
            members[extension] = where
        text: dict[str, str] = {}
        for extension, data in contents.items():
            with contextlib.suppress(UnicodeDecodeError):  # not text: loading reads it from the shard
                text[extension] = data.decode("utf-8")
        lines.append(json.dumps([sample.key, members, text], ensure_ascii=False))
    # written whole, then renamed where the filesystem allows it: a reader never sees half an index
    target = index_url(url)
    partial = f"{target}.partial" if "://" not in url else target
    with fsspec.open(partial, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    if partial != target:
        os.replace(partial, target)
    return len(samples)


def read_index(url: str, small: Collection[str]) -> tuple[Samples | None, str]:
    """The samples of a shard from its index, as :func:`scan` would give them (``small``: the extensions
    whose bytes are wanted), or ``(None, why not)``: no index, or one that does not match the shard."""
    try:
        with fsspec.open(index_url(url), "rb") as f:
            lines = f.read().decode("utf-8").splitlines()
    except FileNotFoundError:
        return None, "no index"
    except OSError as e:
        return None, f"its index cannot be read ({e})"
    try:
        header = json.loads(lines[0])
        if header.get("format") != FORMAT or header.get("version") != VERSION:
            return None, f"its index is not a {FORMAT} version {VERSION}"
        samples = [_sample(line) for line in json.loads("[" + ",".join(lines[1:]) + "]")]  # one C call
        if len(samples) != header["samples"]:
            return None, f"its index is truncated ({len(samples)} of {header['samples']} samples)"
        size, head = _identity(url)
    except (IndexError, KeyError, TypeError, ValueError) as e:
        return None, f"its index does not parse ({e})"
    except (OSError, tarfile.TarError) as e:
        return None, f"the shard cannot be read ({e})"
    if size != header["shard_size"]:
        return None, f"stale index (the shard has {size} bytes, the indexed one had {header['shard_size']})"
    if head != header["head"]:
        return None, "stale index (the shard's first header is not the indexed one's)"
    try:
        problem = _spot_check(url, samples)
        if problem:
            return None, f"stale index ({problem})"
        out: Samples = []
        for sample, text in samples:
            contents = {e: text[e].encode("utf-8") for e in small if e in text}
            for extension in set(small) - contents.keys():
                member = sample.members.get(extension)
                if member is not None:  # not held by the index: one read from the shard
                    contents[extension] = READER.read(url, member)
            out.append((sample, contents))
    except OSError as e:
        return None, f"stale index ({e})"
    return out, ""


def _sample(line: list[Any]) -> tuple[ShardSample, dict[str, str]]:
    key, members, text = line
    found = {
        extension: Member(where[2] if len(where) > 2 else f"{key}.{extension}", int(where[0]), int(where[1]))
        for extension, where in members.items()
    }
    return ShardSample(key, found), text


def _spot_check(url: str, samples: list[tuple[ShardSample, dict[str, str]]]) -> str:
    """Why the headers of the first, middle and last members are not where the index says ("" if they are)."""
    if not samples:
        return ""
    for i in sorted({0, len(samples) // 2, len(samples) - 1}):
        for member in samples[i][0].members.values():
            problem = _header_at(url, member)
            if problem:
                return problem
    return ""


def _header_at(url: str, member: Member) -> str:
    """Why the 512 bytes before a member are not its header ("" if they are)."""
    if member.offset < BLOCK:
        return f"{member.name} at byte {member.offset} has no room for its header"
    return header_problem(READER.read_range(url, member.offset - BLOCK, BLOCK), member)
