"""Read an offline W&B run back from its ``run-<id>.wandb`` file, without a server.

The file is a LevelDB-style log (32 KiB blocks, 7-byte record headers) of ``Record`` protobufs,
after a 7-byte ``:W&B`` header; this is what ``wandb sync`` uploads. Only tests use this reader.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2 as pb

_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclass
class OfflineRun:
    """What an offline run recorded: run id, config (nested), history rows, summary, files, artifacts."""

    folder: Path
    run_id: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    files: set[str] = field(default_factory=set)
    artifacts: list[dict[str, Any]] = field(default_factory=list)

    def history_keys(self) -> set[str]:
        return {k for row in self.history for k in row}


def _records(path: Path) -> list[Any]:
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, pending, chunks = 7, b"", []
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == _FULL:
            chunks.append(chunk)
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            chunks.append(pending + chunk)
    records = []
    for chunk in chunks:
        record = pb.Record()
        record.ParseFromString(chunk)
        records.append(record)
    return records


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


def read_run(folder: Path, timeout: float = 60.0) -> OfflineRun:
    """Parse ``folder/run-<id>.wandb`` (``folder`` is an ``offline-run-...`` directory).

    W&B's service process writes the file on its own schedule: wait for the run's ``exit`` record.
    """
    [path] = folder.glob("run-*.wandb")
    deadline = time.monotonic() + timeout
    records = _records(path)
    while not any(r.WhichOneof("record_type") == "exit" for r in records):
        assert time.monotonic() < deadline, f"{path}: the run never finished writing"
        time.sleep(0.2)
        records = _records(path)
    run = OfflineRun(folder=folder)
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run_id = record.run.run_id
            for item in record.run.config.update:
                run.config[_key(item)] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                run.config[_key(item)] = json.loads(item.value_json)
        elif kind == "history":
            run.history.append({_key(item): json.loads(item.value_json) for item in record.history.item})
        elif kind == "summary":
            for item in record.summary.update:
                run.summary[_key(item)] = json.loads(item.value_json)
        elif kind == "files":
            run.files |= {f.path for f in record.files.files}
        elif kind == "artifact":
            art = record.artifact
            run.artifacts.append(
                {
                    "type": art.type,
                    "name": art.name,
                    "aliases": list(art.aliases),
                    "metadata": json.loads(art.metadata) if art.metadata else {},
                }
            )
    return run
