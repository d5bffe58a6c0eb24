"""A fixed set of validation samples, chosen by id and decoded once, for the W&B media callback."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import soundfile as sf
from PIL import Image

from mmfuse.data.modalities.base import SampleView
from mmfuse.data.sources.shards import ShardRow
from mmfuse.types import Batch

#: how a W&B table or media panel shows a view of each kind (any other kind: its value as text)
MEDIA_KINDS = ("image", "audio")


@dataclass
class FixedSamples:
    """K validation samples with what each modality's DataModule says about showing them.

    Attributes:
        batch: the K samples collated like any validation batch (on the CPU).
        modalities: the modality names, in the data's order (the table's columns).
        views: per sample, modality -> its :class:`~mmfuse.data.modalities.base.SampleView` (None
            where the modality is missing).
        tokens: modality -> per sample, its tokens as text, for the modalities whose views have
            tokens (``[]`` where the sample has none): attention maps' labels.
    """

    batch: Batch
    modalities: list[str]
    views: list[dict[str, SampleView | None]]
    tokens: dict[str, list[list[str]]] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return self.batch.ids


def choose_rows(ids: list[str], labels: list[str], k: int) -> list[int]:
    """Indices of ``k`` rows: sorted by id, taken round-robin over the labels.

    The same data gives the same samples in every run (and every epoch), whatever the order of
    the manifest; every class appears before any appears twice.
    """
    groups: dict[str, list[int]] = {}
    for i in sorted(range(len(ids)), key=ids.__getitem__):
        groups.setdefault(labels[i], []).append(i)
    queues = [groups[label] for label in sorted(groups)]
    chosen: list[int] = []
    while len(chosen) < k and any(queues):
        for queue in queues:
            if queue and len(chosen) < k:
                chosen.append(queue.pop(0))
    return chosen


def fixed_val_samples(trainer: pl.Trainer, k: int) -> FixedSamples | None:
    """Pick and decode ``k`` validation samples; None when the val data is not a manifest dataset."""
    loader = trainer.val_dataloaders
    if isinstance(loader, list | tuple):
        loader = loader[0] if loader else None
    dataset = getattr(loader, "dataset", None)
    rows = getattr(dataset, "rows", None)
    manifest = getattr(dataset, "manifest", None)
    modalities = getattr(dataset, "modalities", None)
    if loader is None or dataset is None or rows is None or manifest is None or modalities is None:
        return None
    labels = [r.cells.get(manifest.target, "") for r in rows]
    items: list[Any] = []
    cells: list[dict[str, str]] = []  # per sample, modality -> its manifest cell ("" where missing)
    picked: list[Any] = []  # per sample, its row
    for i in choose_rows([r.id for r in rows], labels, k * 2):  # spares for undecodable samples
        try:
            item = dataset[i]
        except Exception:  # a bad file is the data checks' business, not the media's
            continue
        if not isinstance(item, dict):  # a sample that could not be decoded (returned as an error)
            continue
        items.append(item)
        picked.append(rows[i])
        cells.append({m: rows[i].cells.get(dm.column, "") for m, dm in modalities.items()})
        if len(items) == k:
            break
    if not items:
        return None
    batch = loader.collate_fn(items)
    if not isinstance(batch, Batch):
        return None
    root = Path(manifest.root)
    views = [
        {
            m: _view(dm, picked[b], cell[m], root, batch.inputs[m], b) if cell[m].strip() else None
            for m, dm in modalities.items()
        }
        for b, cell in enumerate(cells)
    ]
    tokens: dict[str, list[list[str]]] = {}
    for m in modalities:
        per_sample = [view.get(m) for view in views]
        if any(v is not None and v.tokens is not None for v in per_sample):
            tokens[m] = [list(v.tokens or []) if v is not None else [] for v in per_sample]
    return FixedSamples(batch=batch, modalities=list(modalities), views=views, tokens=tokens)


def _view(dm: Any, row: Any, cell: str, root: Path, inputs: Any, b: int) -> SampleView:
    """A modality's view of one sample; a shard row's media is its member's bytes, named by shard and
    member (``train-000000.tar:0001.jpg``), as no file of that name exists to point at."""
    view: SampleView = dm.sample_view(cell, root, inputs, b)
    if not isinstance(row, ShardRow) or not dm.cell_is_path or view.kind not in MEDIA_KINDS:
        return view
    try:
        data, _ = row.read(dm.column)
        if view.kind == "image" and row.place(dm.column).endswith(".npy"):
            f = io.BytesIO(data)  # pixels stored when packing: their settings' record, then them
            np.load(f, allow_pickle=False)
            pixels = np.load(f, allow_pickle=False)  # (H, W, C) uint8
            return SampleView("image", pixels.repeat(3, axis=2) if pixels.shape[2] == 1 else pixels)
        if view.kind == "image":
            with Image.open(io.BytesIO(data)) as img:
                return SampleView("image", np.asarray(img.convert("RGB")))
        samples, rate = sf.read(io.BytesIO(data), dtype="float32")
        return SampleView("audio", (samples, rate))
    except Exception:  # not media a viewer reads (an .npz of frames, a shard gone): say where it is
        return SampleView("text", row.place(dm.column))


def media_value(view: SampleView | None, caption: str | None = None) -> Any:
    """What a table cell or media panel shows for one sample's view: ``wandb.Image`` for an image,
    ``wandb.Audio`` for audio (a path, or ``(samples, sample_rate)``), the value as text otherwise;
    None where the modality is missing."""
    import wandb

    if view is None:
        return None
    try:
        if view.kind == "image":
            return wandb.Image(view.value, caption=caption)
        if view.kind == "audio" and isinstance(view.value, tuple):
            samples, rate = view.value
            return wandb.Audio(samples, sample_rate=rate, caption=caption)
        if view.kind == "audio":
            return wandb.Audio(view.value, caption=caption)
    except Exception:  # unreadable media: show what it is instead of failing the run
        return str(view.value)
    return str(view.value)
