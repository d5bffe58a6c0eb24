"""A fixed set of validation samples, chosen by id and decoded once, for the W&B media callback."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from mmfuse.data.modalities.audio import AudioDataModule
from mmfuse.data.modalities.image import ImageDataModule
from mmfuse.data.modalities.text import TextDataModule
from mmfuse.types import Batch


@dataclass
class FixedSamples:
    """K validation samples with their raw manifest cells, so their inputs can be shown as media.

    Attributes:
        batch: the K samples collated like any validation batch (on the CPU).
        cells: per sample, modality -> the raw manifest cell ("" where the modality is missing).
        kinds: modality -> ``image``, ``audio``, ``text`` or ``other`` (how to show its cells).
        root: the manifest's folder; media cells are paths relative to it.
        tokens: text modality -> per sample, its tokens as text (the tokenizer's pieces, in
            ``input_ids`` order; ``[]`` where the text is missing): attention maps' labels.
    """

    batch: Batch
    cells: list[dict[str, str]]
    kinds: dict[str, str]
    root: Path
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
    cells: list[dict[str, str]] = []
    for i in choose_rows([r.id for r in rows], labels, k * 2):  # spares for undecodable samples
        try:
            item = dataset[i]
        except Exception:  # a bad file is the data checks' business, not the media's
            continue
        if not isinstance(item, dict):  # a sample that could not be decoded (returned as an error)
            continue
        items.append(item)
        cells.append({m: rows[i].cells.get(dm.column, "") for m, dm in modalities.items()})
        if len(items) == k:
            break
    if not items:
        return None
    batch = loader.collate_fn(items)
    if not isinstance(batch, Batch):
        return None
    kinds = {m: _kind(dm) for m, dm in modalities.items()}
    tokens = {
        m: [_token_texts(dm, batch.inputs[m], b) if batch.present[m][b] else [] for b in range(len(batch))]
        for m, dm in modalities.items()
        if isinstance(dm, TextDataModule)
    }
    return FixedSamples(batch=batch, cells=cells, kinds=kinds, root=Path(manifest.root), tokens=tokens)


def _token_texts(datamodule: TextDataModule, inputs: dict[str, Any], b: int) -> list[str]:
    """Sample ``b``'s real tokens as text: vocabulary words, or the Hugging Face tokenizer's pieces."""
    ids = inputs["input_ids"][b][inputs["attention_mask"][b]].tolist()
    if datamodule.tokenizer is not None:
        return [str(t) for t in datamodule.hf_tokenizer.convert_ids_to_tokens(ids)]
    vocab = datamodule.vocab
    return [vocab[i] if 0 <= i < len(vocab) else str(i) for i in ids]


def _kind(datamodule: Any) -> str:
    if isinstance(datamodule, ImageDataModule):
        return "image"
    if isinstance(datamodule, AudioDataModule):
        return "audio"
    if isinstance(datamodule, TextDataModule):
        return "text"
    return "other"


def media_value(kind: str, cell: str, root: Path, caption: str | None = None) -> Any:
    """What a table cell or media panel shows for one manifest cell: ``wandb.Image`` for images,
    ``wandb.Audio`` for audio, the text itself otherwise; None where the modality is missing."""
    import wandb

    if not cell.strip():
        return None
    try:
        if kind == "image":
            return wandb.Image(str(root / cell), caption=caption)
        if kind == "audio":
            return wandb.Audio(str(root / cell), caption=caption)
    except Exception:  # unreadable media: show the path instead of failing the run
        return cell
    return cell
