"""``mmfuse pack``: write a config's manifest into WebDataset shards, one set per split."""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import fsspec
import torch
import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress

from mmfuse.commands.config import build_data, command_parser, parse_config
from mmfuse.data.manifest.errors import DataError, SampleError
from mmfuse.data.manifest.manifest import SPLITS, Manifest, Row
from mmfuse.data.manifest.source import ManifestSource
from mmfuse.data.modalities.audio import AudioDataModule
from mmfuse.data.modalities.base import ModalityDataModule
from mmfuse.data.modalities.image import ImageDataModule
from mmfuse.data.multimodal import MultimodalDataModule
from mmfuse.data.sources.shard_files import expand
from mmfuse.data.sources.shard_index import write_index
from mmfuse.data.sources.shards import DEFAULT_MEMBERS

DESCRIPTION = """\
Write the samples of a config's manifest into WebDataset tar shards, one set per split
(<out>/train-000000.tar, ...), and <out>/source.yaml: the ShardSource that reads them back, to
give in place of the manifest source (--data.init_args.source <out>/source.yaml). Ids, splits,
targets, extra columns and missing modalities survive: a run on the shards sees the same samples.

Each sample is one key: its media files as members (an image column `image` with a .png file
becomes the member `png`, any other column `col` becomes `col.png`), its text as `txt`, every
other column in one `json` member. With --resize_images, images are stored as their pixels, decoded
and resized to the image modality's size (column.npy: 8 bits per channel, uncompressed), so that
training copies pixels instead of decoding images; values then differ from the original files' by
less than half a grey level. With --audio_features, audio is stored as the audio modality's log-mel
frames (column.npy), so that training skips decoding and the STFT; a train clip longer than
max_seconds is refused (training crops a random window of its waveform). Both store the settings
they were computed with beside the array, checked when read: pack again after changing one.

Each shard gets its index beside it (train-000000.tar.idx), which loading reads instead of scanning
the shard; `mmfuse index` writes the index of shards written by another tool.

Every other argument is as for `mmfuse fit` (--config FILE, --data.init_args...).
"""
EXAMPLE = "example: mmfuse pack --config configs/my_data.yaml --out data/shards --samples_per_shard 10000"


def main(args: list[str]) -> int:
    """Run ``mmfuse pack``; returns the exit code."""
    parser = command_parser("mmfuse pack", DESCRIPTION, EXAMPLE)
    parser.add_argument("--out", required=True, help="folder (or fsspec URL) the shards are written to")
    parser.add_argument("--samples_per_shard", type=int, default=10000, help="samples per shard (10000)")
    parser.add_argument(
        "--max_shard_mb", type=float, default=1000.0, help="bytes per shard at most (1000 MB)"
    )
    parser.add_argument("--workers", type=int, default=2, help="processes that read files (default 2)")
    parser.add_argument(
        "--resize_images", action="store_true", help="store images as pixels at the modality's size (.npy)"
    )
    parser.add_argument(
        "--audio_features",
        action="store_true",
        help="store audio as the modality's log-mel frames (.npy); train clips must fit max_seconds",
    )
    own, rest = parser.parse_known_args(args)
    if not any(a == "--config" or a.startswith(("--config=", "--data")) for a in rest):
        parser.error("give the run's config: --config FILE (and any --data.* overrides)")
    if own.samples_per_shard < 1:
        parser.error("--samples_per_shard must be >= 1")
    data = build_data(parse_config(rest))
    if isinstance(data, MultimodalDataModule):
        source, modalities = data.source, data.modalities
    else:
        source, modalities = data.source, {data.name: data}
    if source is None:
        parser.error(f"{type(data).__name__} has no `source`: nothing to pack")
    console = Console(soft_wrap=True)
    written = pack(
        source,
        modalities,
        own.out,
        own.samples_per_shard,
        own.max_shard_mb,
        own.workers,
        own.resize_images,
        own.audio_features,
    )
    for split, (pattern, count) in written.items():
        console.print(f"{split}: {count} samples -> {escape(pattern)}")
    console.print(f"[bold]source config written to[/bold] {escape(own.out.rstrip('/') + '/source.yaml')}")
    return 0


class Packer:
    """Turns one manifest row into one WebDataset sample (a class, so that worker processes can run it).

    Args:
        manifest: the manifest the rows come from.
        source: its source (for the id and split column names, which are not copied as fields).
        modalities: modality name -> its DataModule (which column, whether the cell is a file).
        resize_images: store images as their pixels decoded at their modality's size (``column.npy``).
        audio_features: store audio as its log-mel frames (``column.npy``), computed as the audio
            modality computes them.

    Raises:
        ValueError: ``audio_features`` with an audio modality that reads waveforms.
    """

    def __init__(
        self,
        manifest: Manifest,
        source: ManifestSource,
        modalities: dict[str, ModalityDataModule],
        resize_images: bool,
        audio_features: bool = False,
    ) -> None:
        self.root = manifest.root
        self.path = str(manifest.path)
        self.columns = [(dm.column, dm.cell_is_path) for dm in modalities.values()]
        # column -> (modality class, settings) of the columns stored decoded: plain values, to build the
        # module again in a worker (the DataModules, a tokenizer among them, would be pickled with
        # every chunk of rows)
        self.stored: dict[str, tuple[type, dict[str, Any]]] = {}
        for dm in modalities.values():
            if isinstance(dm, ImageDataModule) and resize_images:
                settings = {**dm.stored_settings(), "max_pixels": dm.max_pixels}
                self.stored[dm.column] = (ImageDataModule, settings)
            if isinstance(dm, AudioDataModule) and audio_features:
                if dm.features != "log_mel":
                    raise ValueError(
                        f"--audio_features stores log-mel frames, but the audio column {dm.column!r} is "
                        f"read as features={dm.features!r}"
                    )
                self.stored[dm.column] = (AudioDataModule, {"resample": dm.resample, **dm.stored_settings()})
        # every other column (targets, extra fields) goes into the json member
        taken = {source.id_column, source.split_column, "id", "split", *(c for c, _ in self.columns)}
        self.fields = [c for c in manifest.columns if c not in taken]

    def extension(self, column: str, is_path: bool, cell: str) -> str:
        """The member extension of one cell: ``png``, or ``front.png`` for an image column ``front``."""
        suffix = Path(cell).suffix.lower().lstrip(".") if is_path else "txt"
        return suffix if DEFAULT_MEMBERS.get(suffix) == column else f"{column}.{suffix}"

    def __call__(self, row: Row) -> dict[str, Any]:
        sample: dict[str, Any] = {"__key__": row.id}
        for column, is_path in self.columns:
            cell = row.cells.get(column, "")
            if not cell.strip():
                continue  # missing here: no member, and the shard source reads an empty cell
            if not is_path:
                sample[self.extension(column, is_path, cell)] = cell.encode("utf-8")
                continue
            try:
                data = (self.root / cell).read_bytes()
            except OSError as e:
                reason = f"cannot read {cell}: {e.strerror}"
                raise DataError(
                    reason, file=self.path, row=row.row, sample_id=row.id, column=column
                ) from None
            decoded = self._decoded(data, row, column) if column in self.stored else None
            if decoded is None:  # stored as it is (or does not decode: training reports what is wrong)
                sample[self.extension(column, is_path, cell)] = data
            else:
                sample[f"{column}.npy"] = decoded
        sample["json"] = json.dumps({c: row.cells.get(c, "") for c in self.fields}).encode("utf-8")
        return sample

    def _decoded(self, data: bytes, row: Row, column: str) -> bytes | None:
        """An image's pixels or a clip's log-mel frames, stored with their settings (None: the file
        does not decode).

        Raises:
            DataError: a train clip longer than ``max_seconds``, whose random crop needs the waveform.
        """
        kind, settings = self.stored[column]
        dm = _module(kind, tuple(settings.items()))
        cell = row.cells[column]
        try:
            if isinstance(dm, ImageDataModule):
                return dm.precompute(data, cell)
            assert isinstance(dm, AudioDataModule)
            wave = dm.decode_wave(io.BytesIO(data), cell)
        except SampleError:
            return None
        if row.split == "train" and len(wave) > dm.max_samples:
            reason = (
                f"{cell} lasts {len(wave) / dm.sample_rate:.2f} s, over max_seconds={dm.max_seconds}: "
                "training crops a random window of its waveform, which precomputed frames cannot give "
                "(pack without --audio_features, or cut the clips to max_seconds)"
            )
            raise DataError(reason, file=self.path, row=row.row, sample_id=row.id, column=column)
        return dm.precompute(wave[: dm.max_samples])  # val/test: the start, as they are read


@functools.lru_cache(maxsize=8)
def _module(kind: type, settings: tuple[tuple[str, Any], ...]) -> ModalityDataModule:
    """The modality that decodes a stored column, built once per process from its settings."""
    module: ModalityDataModule = kind(**dict(settings))
    return module


def pack(
    source: ManifestSource,
    modalities: dict[str, ModalityDataModule],
    out: str,
    samples_per_shard: int = 10000,
    max_shard_mb: float = 1000.0,
    workers: int = 2,
    resize_images: bool = False,
    audio_features: bool = False,
) -> dict[str, tuple[str, int]]:
    """Write every split of ``source`` into shards under ``out`` and ``out/source.yaml``.

    Returns:
        split -> (its shards' brace pattern, samples written), for the splits with rows.

    Raises:
        DataError: the manifest does not load, or a row's file cannot be read.
    """
    from webdataset import ShardWriter

    source.prepare()
    manifest = source.load()
    packer = Packer(manifest, source, dict(sorted(modalities.items())), resize_images, audio_features)
    out = out.rstrip("/")
    fsspec.filesystem(fsspec.core.split_protocol(out)[0] or "file").makedirs(out, exist_ok=True)
    written: dict[str, tuple[str, int]] = {}
    extensions: set[str] = set()
    with Progress(transient=True) as progress, _mapper(workers) as mapper:
        for split in SPLITS:
            rows = manifest.split(split)
            if not rows:
                continue
            task = progress.add_task(f"packing {split}", total=len(rows))
            with ShardWriter(
                f"{out}/{split}-%06d.tar",
                maxcount=samples_per_shard,
                maxsize=max_shard_mb * 1e6,
                verbose=0,
                opener=lambda name: fsspec.open(name, "wb").open(),
                mtime=0.0,  # the same manifest gives the same bytes
            ) as writer:
                for sample in mapper(packer, rows):
                    extensions.update(k for k in sample if not k.startswith("__"))
                    writer.write(sample)
                    progress.advance(task)
                last = writer.shard - 1
            written[split] = (f"{out}/{split}-{{000000..{last:06d}}}.tar", len(rows))
    config = _source_config(source, written, packer, extensions)
    # each shard's index beside it: loading reads it instead of scanning (docs/scale.md)
    inline = ["json", *config["init_args"]["text_members"]]
    for pattern, _ in written.values():
        for url in expand(pattern):
            write_index(url, inline)
    with fsspec.open(f"{out}/source.yaml", "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    return written


def _source_config(
    source: ManifestSource, written: dict[str, tuple[str, int]], packer: Packer, extensions: set[str]
) -> dict[str, Any]:
    """The ShardSource that reads the shards back, with the same tasks as ``source``."""
    is_path = dict(packer.columns)
    members = {e: e.split(".")[0] if "." in e else DEFAULT_MEMBERS[e] for e in sorted(extensions - {"json"})}
    text = [e for e, column in members.items() if not is_path[column]]
    init: dict[str, Any] = {split: pattern for split, (pattern, _) in written.items()}
    init.update(members=members, text_members=text, target=source.target, classes=source.classes)
    if source.tasks is not None:
        init["tasks"] = [asdict(t) for t in source.tasks]
    return {"class_path": "mmfuse.data.sources.shards.ShardSource", "init_args": init}


class _mapper:
    """``map`` in order, in worker processes (``workers`` > 0) or here."""

    def __init__(self, workers: int) -> None:
        # one torch thread a worker, as a DataLoader worker has: a forked child that runs an OpenMP
        # region its parent had started (a log-mel's window) waits for the parent's threads forever
        self.pool = (
            ProcessPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,))
            if workers > 0
            else None
        )

    def __call__(self, fn: Packer, rows: list[Row]) -> Iterator[dict[str, Any]]:
        if self.pool is None:
            return map(fn, rows)
        return self.pool.map(fn, rows, chunksize=64)

    def __enter__(self) -> _mapper:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
