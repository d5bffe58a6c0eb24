"""``mmfuse pack``: write a config's manifest into WebDataset shards, one set per split."""

from __future__ import annotations

import argparse
import functools
import io
import json
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import fsspec
import yaml
from PIL import Image
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress

from mmfuse.commands.config import build_data, parse_config
from mmfuse.data.manifest.errors import DataError, SampleError
from mmfuse.data.manifest.manifest import SPLITS, Manifest, Row
from mmfuse.data.manifest.source import ManifestSource
from mmfuse.data.modalities.audio import AudioDataModule
from mmfuse.data.modalities.base import ModalityDataModule
from mmfuse.data.modalities.image import ImageDataModule
from mmfuse.data.modalities.image_modes import image_to_array
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
other column in one `json` member. With --resize_images, images are stored decoded and resized to
the image modality's size (PNG, 8 bits per channel), so that training decodes small images; pixel
values then differ from the original files' by less than half a grey level. With --audio_features,
audio is stored as the audio modality's log-mel frames (column.npz, with the settings they were
computed with, checked when read), so that training skips decoding and the STFT; a train clip longer
than max_seconds is refused (training crops a random window of its waveform), and the frames must be
packed again after changing an audio setting.

Each shard gets its index beside it (train-000000.tar.idx), which loading reads instead of scanning
the shard; `mmfuse index` writes the index of shards written by another tool.

Every other argument is as for `mmfuse fit` (--config FILE, --data.init_args...).
"""
EXAMPLE = "example: mmfuse pack --config configs/my_data.yaml --out data/shards --samples_per_shard 10000"


def main(args: list[str]) -> int:
    """Run ``mmfuse pack``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="mmfuse pack",
        description=DESCRIPTION,
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--out", required=True, help="folder (or fsspec URL) the shards are written to")
    parser.add_argument("--samples_per_shard", type=int, default=10000, help="samples per shard (10000)")
    parser.add_argument(
        "--max_shard_mb", type=float, default=1000.0, help="bytes per shard at most (1000 MB)"
    )
    parser.add_argument("--workers", type=int, default=2, help="processes that read files (default 2)")
    parser.add_argument(
        "--resize_images", action="store_true", help="store images decoded and resized to the modality's size"
    )
    parser.add_argument(
        "--audio_features",
        action="store_true",
        help="store audio as the modality's log-mel frames (.npz); train clips must fit max_seconds",
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
        resize_images: store images decoded and resized to their modality's size.
        audio_features: store audio as its log-mel frames (``column.npz``), computed as the audio
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
        # (column, holds a file, resize to (channels, size, background) or None): plain values, as
        # the DataModules (a tokenizer, ...) would be pickled to the workers with every chunk of rows
        self.columns: list[tuple[str, bool, tuple[int, int, int] | None]] = []
        for dm in modalities.values():
            resize = isinstance(dm, ImageDataModule) and resize_images
            spec = (dm.channels, dm.size, dm.alpha_background) if isinstance(dm, ImageDataModule) else None
            self.columns.append((dm.column, dm.cell_is_path, spec if resize else None))
        # audio column -> the AudioDataModule's settings, to build it again in a worker process
        self.audio: dict[str, dict[str, Any]] = {}
        for dm in modalities.values() if audio_features else []:
            if isinstance(dm, AudioDataModule):
                if dm.features != "log_mel":
                    raise ValueError(
                        f"--audio_features stores log-mel frames, but the audio column {dm.column!r} is "
                        f"read as features={dm.features!r}"
                    )
                self.audio[dm.column] = {"resample": dm.resample, **dm.feature_settings()}
        # every other column (targets, extra fields) goes into the json member
        taken = {source.id_column, source.split_column, "id", "split", *(c for c, _, _ in self.columns)}
        self.fields = [c for c in manifest.columns if c not in taken]

    def extension(self, column: str, is_path: bool, cell: str, resized: bool) -> str:
        """The member extension of one cell: ``png``, or ``front.png`` for an image column ``front``."""
        suffix = ("png" if resized else Path(cell).suffix.lower().lstrip(".")) if is_path else "txt"
        return suffix if DEFAULT_MEMBERS.get(suffix) == column else f"{column}.{suffix}"

    def __call__(self, row: Row) -> dict[str, Any]:
        sample: dict[str, Any] = {"__key__": row.id}
        for column, is_path, resize in self.columns:
            cell = row.cells.get(column, "")
            if not cell.strip():
                continue  # missing here: no member, and the shard source reads an empty cell
            extension = self.extension(column, is_path, cell, resize is not None)
            if not is_path:
                sample[extension] = cell.encode("utf-8")
                continue
            try:
                data = (self.root / cell).read_bytes()
            except OSError as e:
                reason = f"cannot read {cell}: {e.strerror}"
                raise DataError(
                    reason, file=self.path, row=row.row, sample_id=row.id, column=column
                ) from None
            if column in self.audio:
                features = self._features(data, row, column)
                if features is not None:  # else the file itself: training reports what is wrong with it
                    extension, data = f"{column}.npz", features
            sample[extension] = data if resize is None else _resized(data, *resize)
        sample["json"] = json.dumps({c: row.cells.get(c, "") for c in self.fields}).encode("utf-8")
        return sample

    def _features(self, data: bytes, row: Row, column: str) -> bytes | None:
        """The clip's log-mel frames as an ``.npz`` (None: the file does not decode).

        Raises:
            DataError: a train clip longer than ``max_seconds``, whose random crop needs the waveform.
        """
        audio = _audio_module(**self.audio[column])
        cell = row.cells[column]
        try:
            wave = audio.decode_wave(io.BytesIO(data), cell)
        except SampleError:
            return None
        if row.split == "train" and len(wave) > audio.max_samples:
            reason = (
                f"{cell} lasts {len(wave) / audio.sample_rate:.2f} s, over max_seconds={audio.max_seconds}: "
                "training crops a random window of its waveform, which precomputed frames cannot give "
                "(pack without --audio_features, or cut the clips to max_seconds)"
            )
            raise DataError(reason, file=self.path, row=row.row, sample_id=row.id, column=column)
        return audio.precompute(wave[: audio.max_samples])  # val/test: the start, as they are read


@functools.lru_cache(maxsize=4)
def _audio_module(**settings: Any) -> AudioDataModule:
    """The audio modality that computes the frames, built once per process from its settings."""
    return AudioDataModule(**settings)


def _resized(data: bytes, channels: int, size: int, background: int) -> bytes:
    """An image decoded as the modality decodes it (orientation, mode, size), stored as an 8-bit PNG."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        array = image_to_array(img, channels, size, background)  # (H, W, C) in [0, 1]
    pixels = (array * 255.0).round().clip(0, 255).astype("uint8")
    out = io.BytesIO()
    Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels).save(out, format="PNG")
    return out.getvalue()


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
    is_path = {column: path for column, path, _ in packer.columns}
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
        self.pool = ProcessPoolExecutor(workers) if workers > 0 else None

    def __call__(self, fn: Packer, rows: list[Row]) -> Iterator[dict[str, Any]]:
        if self.pool is None:
            return map(fn, rows)
        return self.pool.map(fn, rows, chunksize=64)

    def __enter__(self) -> _mapper:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
