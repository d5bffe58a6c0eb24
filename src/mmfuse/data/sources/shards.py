"""ShardSource: samples from WebDataset tar shards instead of a manifest of per-sample files.

The shards of each split are indexed once when the data is loaded: every sample becomes a manifest
row (``id`` = the sample's key, ``split`` = the split whose pattern named the shard), its text and
JSON members are read into cells there, and its media members (images, audio) are located by byte
offset and read when the sample is decoded. So a shard dataset is map-style: rows keep integer
indices, and the samplers (exact evaluation under DDP, resumable order), skip accounting, check-data
and predict work on shards exactly as on a manifest. See docs/scale.md for why this and not streaming.
"""

from __future__ import annotations

import gc
import json
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmfuse.data.manifest.errors import DataError, SampleError
from mmfuse.data.manifest.manifest import SPLITS, Manifest, Row
from mmfuse.data.manifest.source import ManifestSource
from mmfuse.data.manifest.tasks import Task
from mmfuse.data.say import say
from mmfuse.data.sources.shard_files import READER, Member, ShardSample, expand, scan
from mmfuse.data.sources.shard_index import read_index

#: member extension -> column: the img2dataset layout ({key}.jpg, {key}.txt, {key}.json) and audio
DEFAULT_MEMBERS = {
    "jpg": "image",
    "jpeg": "image",
    "png": "image",
    "webp": "image",
    "txt": "text",
    "wav": "audio",
    "flac": "audio",
}


@dataclass(frozen=True)
class ShardRow(Row):
    """A manifest row read from a shard.

    Attributes:
        shard: the shard's path or URL.
        members: column -> the member its cell came from (media, text, or the JSON of a field).
    """

    shard: str = ""
    members: dict[str, Member] = field(default_factory=dict)

    def place(self, column: str | None) -> str:
        """Where a column's value lives, for messages: ``shard.tar:key.jpg``, or the shard."""
        member = self.members.get(column or "")
        return f"{self.shard}:{member.name}" if member is not None else self.shard

    def read(self, column: str) -> tuple[bytes, str]:
        """The bytes of a media column's member, and its place.

        Raises:
            SampleError: the column came from no member, or the member cannot be read.
        """
        member = self.members.get(column)
        if member is None:
            raise SampleError(f"column {column!r} is not a member of this sample", file=self.shard)
        place = self.place(column)
        try:
            return READER.read(self.shard, member), place
        except OSError as e:
            raise SampleError(f"cannot read the member: {e}", file=place) from None


class ShardManifest(Manifest):
    """The manifest of a shard source: media cells name tar members, which cannot leave their shard."""

    def outside_root(self, cell: str) -> str | None:
        return None


class ShardSource(ManifestSource):
    """Where the samples come from: WebDataset tar shards, one set per split.

    Args:
        train: the train split's shards: a path or URL with brace ranges
            (``data/shards/train-{000000..000127}.tar``, ``s3://bucket/train-{0000..0099}.tar``);
            several patterns separated by spaces. Remote URLs need their fsspec backend (``s3fs``,
            ``gcsfs``; ``https://`` works as installed).
        val: the val split's shards (same form); None: no val split.
        test: the test split's shards (same form); None: no test split.
        members: member extension -> the column it fills, which a modality reads (its ``column``).
            Default: ``jpg``/``jpeg``/``png``/``webp`` -> ``image``, ``txt`` -> ``text``,
            ``wav``/``flac`` -> ``audio``. Members of other extensions are ignored.
        text_members: extensions whose member is UTF-8 text that becomes the cell itself (the text
            modality reads text, not a file); the others are files decoded by their modality.
        fields: extension of the JSON member whose top-level fields become columns: the target(s)
            and any extra field (img2dataset writes ``{key}.json``). Strings are kept, numbers and
            booleans written as text, null as empty, lists and objects as JSON.
        target: see :class:`~mmfuse.data.manifest.manifest.ManifestSource` (here a JSON field).
        classes: see ``ManifestSource``.
        tasks: see ``ManifestSource``.
    """

    def __init__(
        self,
        train: str | None = None,
        val: str | None = None,
        test: str | None = None,
        members: dict[str, str] | None = None,
        text_members: list[str] | None = None,
        fields: str = "json",
        target: str | None = "label",
        classes: list[str] | None = None,
        tasks: list[Task] | None = None,
    ) -> None:
        patterns = {"train": train, "val": val, "test": test}
        given = [p for p in patterns.values() if p]
        if not given:
            raise ValueError("ShardSource needs the shards of at least one split (train, val or test)")
        super().__init__(path=given[0], target=target, classes=classes, tasks=tasks)
        self.train, self.val, self.test = train, val, test
        self.members = dict(DEFAULT_MEMBERS if members is None else members)
        self.text_members = ["txt"] if text_members is None else list(text_members)
        self.fields = fields
        if fields in self.members:
            raise ValueError(f"{fields!r} is the JSON fields member, so it cannot also be one of `members`")

    def load(self, problems: list[DataError] | None = None) -> Manifest:
        """Index every split's shards into rows (see :meth:`ManifestSource.load` for ``problems``).

        Problems of a sample (a duplicate key, a key in two splits, a JSON or text member that does
        not decode) name the shard and member; a shard that cannot be read is a problem of the source
        as a whole (always raised without ``problems``).
        """
        # millions of small objects and no cycles among them: the collector's passes over a growing
        # heap would cost more than building the rows (3x on an index of 10,000 samples)
        paused = gc.isenabled()
        gc.disable()
        try:
            return self._load(problems)
        finally:
            if paused:
                gc.enable()

    def _load(self, problems: list[DataError] | None) -> Manifest:
        small = {self.fields, *self.text_members}
        columns: dict[str, None] = {"id": None, "split": None}  # an ordered set
        rows: list[ShardRow] = []
        number = 0  # samples scanned so far, good or not: a row number unique across the source
        seen: dict[str, ShardRow] = {}

        def report(error: DataError) -> None:
            if problems is None:
                raise error
            problems.append(error)

        for split in SPLITS:
            pattern = {"train": self.train, "val": self.val, "test": self.test}[split]
            unindexed: list[str] = []
            for url in expand(pattern) if pattern else []:
                try:
                    for sample, contents in self._samples(url, small, unindexed):
                        number += 1
                        row, reasons = self._row(url, split, number, sample.key, sample.members, contents)
                        columns.update(dict.fromkeys(row.cells))
                        first = seen.get(row.id)
                        if first is not None:
                            where = f"{first.shard} (sample {first.id!r})"
                            reasons.append(
                                ("id", f"duplicate key (first in {where})")
                                if first.split == split
                                else ("id", f"the same key is in two splits: {first.split!r} in {where}")
                            )
                        for column, reason in reasons:
                            report(
                                DataError(
                                    reason,
                                    file=row.place(column),
                                    row=number,
                                    sample_id=row.id,
                                    column=column,
                                    split=split,
                                )
                            )
                        if not reasons:
                            seen[row.id] = row
                            rows.append(row)
                except DataError:
                    raise  # a sample's problem, raised by report() without a problems list
                except (OSError, tarfile.TarError, ValueError) as e:
                    report(DataError(f"cannot read the shard: {e}", file=url, split=split))
            if unindexed:
                n = len(unindexed)
                listed = ", ".join(unindexed[:3]) + (f" and {n - 3} more" if n > 3 else "")
                say(f"{split}: scanned {n} shard(s) without an index ({listed}); see `mmfuse index`")
        names = list(columns)
        # every row has every column, as a manifest's rows do ("" = missing)
        full: list[Row] = [
            ShardRow(r.row, r.id, r.split, {c: r.cells.get(c, "") for c in names}, r.shard, r.members)
            for r in rows
        ]
        return self._manifest(names, full, problems)

    def _samples(
        self, url: str, small: set[str], unindexed: list[str]
    ) -> Iterable[tuple[ShardSample, dict[str, bytes]]]:
        """A shard's samples from its index, or by scanning it when it has none (added to ``unindexed``)
        or a stale one (said at once: a shard changed since it was indexed)."""
        READER.forget(url)  # opened afresh: the shard may have been replaced since it was last read
        samples, why = read_index(url, small)
        if samples is not None:
            return samples
        if why == "no index":
            unindexed.append(url)
        else:
            say(f"{url}: {why}; scanning the shard (`mmfuse index` rewrites its index)")
        return scan(url, small)  # lazily: the samples before a problem of the shard still count

    def _row(
        self,
        url: str,
        split: str,
        number: int,
        key: str,
        members: Mapping[str, Member],
        contents: Mapping[str, bytes],
    ) -> tuple[ShardRow, list[tuple[str, str]]]:
        """One sample as a row, and ``(column, reason)`` for each of its members that did not read."""
        cells = {"id": key, "split": split}
        where: dict[str, Member] = {}
        reasons: list[tuple[str, str]] = []
        if self.fields in members:
            member = members[self.fields]
            try:
                record = json.loads(contents[self.fields].decode("utf-8"))
                if not isinstance(record, dict):
                    raise ValueError(f"a JSON {type(record).__name__}, not an object")
                for name, value in record.items():
                    if name not in ("id", "split"):
                        cells[name] = _cell(value)
                        where[name] = member
            except (UnicodeDecodeError, ValueError) as e:
                where[self.fields] = member
                reasons.append((self.fields, f"the {self.fields} member does not decode: {e}"))
        for extension, member in members.items():
            column = self.members.get(extension)
            if column is None:
                continue
            where[column] = member
            if extension in self.text_members:
                try:
                    cells[column] = contents[extension].decode("utf-8")
                except UnicodeDecodeError as e:
                    reasons.append((column, f"text member is not UTF-8: {e}"))
            else:
                cells[column] = member.name
        return ShardRow(number, key, split, cells, url, where), reasons

    def _manifest(self, columns: list[str], rows: list[Row], problems: list[DataError] | None) -> Manifest:
        path = Path(self.path)
        tasks: list[Task] = []
        for task in self.declared_tasks():
            try:
                tasks.append(task.resolve(path, columns, [r.cells for r in rows]))
            except DataError as e:
                if problems is None:
                    raise
                problems.append(e)
        targets = [c for t in tasks for c in t.target_columns]
        labelled = {r.split for r in rows if any(r.cells.get(c, "").strip() for c in targets)}
        return ShardManifest(
            path=path,
            columns=columns,
            rows=rows,
            tasks=tasks,
            labelled_splits=labelled,
            inferred_classes={t.name for t in self.declared_tasks() if t.needs_data()},
        )


def _cell(value: Any) -> str:
    """A JSON field as a manifest cell's text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)
