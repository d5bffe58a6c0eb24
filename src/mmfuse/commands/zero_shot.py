"""``mmfuse embed --zero_shot``: classify a split's samples by their nearest class-name prompt.

The classes and each sample's true class come from the data (a multiclass task, or any manifest
column); the prompts are tokenised by the data's own text module (the tokenizer or vocabulary the
model was trained with) and embedded by the model's text encoder exactly as a caption is: its tokens
mean-pooled over the real ones, the embedding the contrastive objective aligns and ``embed`` writes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mmfuse.data.manifest.errors import ConfigError
from mmfuse.data.manifest.manifest import Manifest, Row
from mmfuse.data.manifest.tasks import TargetError, Task, read_target
from mmfuse.data.modalities.text import UNK_ID, TextDataModule
from mmfuse.models.masking import masked_mean
from mmfuse.models.zero_shot import nearest_class, zero_shot_report

DEFAULT_PROMPT = "{}"


@dataclass(frozen=True)
class ClassLabels:
    """The classes of a zero-shot evaluation and each sample's true one.

    Attributes:
        column: the manifest column the classes are read from.
        names: the class names, in index order.
        labels: ``(N,)`` the class index of each sample, ``-1`` where its cell is empty or not a class.
    """

    column: str
    names: list[str]
    labels: np.ndarray


def class_labels(manifest: Manifest, rows: Sequence[Row], ids: Sequence[str], by: str | None) -> ClassLabels:
    """Each of ``ids``' class, from a multiclass task or a manifest column.

    Args:
        manifest: the data's manifest.
        rows: the split's rows (``ids`` are among them).
        ids: the samples, in the order of the embeddings.
        by: a multiclass task's name or a manifest column; None: the data's first multiclass task.
            A task keeps its class order (the checkpoint's); a column that is no task's gets the
            class names learnt from its values over the whole manifest, as a task without
            ``classes`` would (natural order).

    Raises:
        ConfigError: no such task or column, or nothing to classify by.
    """
    tasks = [t for t in manifest.tasks if t.kind == "multiclass"]
    if by is None:
        if not tasks:
            raise ConfigError(
                f"--zero_shot: the data has no multiclass task; name the column holding each sample's "
                f"class: --zero_shot COLUMN (columns: {manifest.columns})"
            )
        task = tasks[0]
    else:
        found = [t for t in tasks if by in (t.name, t.target_columns[0])]
        if found:
            task = found[0]
        elif by in manifest.columns:
            task = Task(name="zero_shot", columns=[by]).resolve(
                manifest.path, manifest.columns, [r.cells for r in manifest.rows]
            )
        else:
            raise ConfigError(
                f"--zero_shot {by}: no multiclass task {[t.name for t in tasks]} or column of "
                f"{manifest.path} {manifest.columns} has that name"
            )
    index = {name: i for i, name in enumerate(task.names)}
    by_id = {r.id: r for r in rows}

    def label(sample_id: str) -> int:
        try:
            value = read_target(task, by_id[sample_id].cells, index)
        except TargetError:
            return -1
        return value if isinstance(value, int) else -1

    labels = np.array([label(i) for i in ids], dtype=np.int64)
    return ClassLabels(task.target_columns[0], task.names, labels)


def prompts_for(names: Sequence[str], template: str) -> list[str]:
    """``template`` with ``{}`` filled by each class name (``{}`` must appear once)."""
    if template.count("{}") != 1:
        raise ConfigError(f"--prompt {template!r} must hold exactly one {{}}, where the class name goes")
    return [template.replace("{}", name) for name in names]


@torch.no_grad()
def prompt_embeddings(encoder: nn.Module, text: TextDataModule, root: Path, prompts: Sequence[str]) -> Tensor:
    """``(K, D)``: each prompt tokenised by ``text`` and embedded by ``encoder`` as a caption is.

    The same path as a batch's text: ``text.load`` (tokenise, truncate) and ``text.collate`` (pad,
    mask), the encoder in eval mode, its tokens mean-pooled over the real ones.
    """
    batch = text.collate([text.load(p, root, train=False) for p in prompts])
    device = next(encoder.parameters(), torch.zeros(0)).device
    was_training = encoder.training
    encoder.eval()
    try:
        out = encoder(**{k: v.to(device) for k, v in batch.items()})
    finally:
        encoder.train(was_training)
    return masked_mean(out.tokens, out.mask).float().cpu()  # (K, D)


def unknown_words(text: TextDataModule, root: Path, names: Sequence[str]) -> list[str]:
    """The class names that the built-in vocabulary does not know (they embed as ``<unk>``)."""
    if text.tokenizer is not None:
        return []
    return [n for n in names if (text.load(n, root, train=False)["input_ids"] == UNK_ID).any()]


def text_modality(modalities: Mapping[str, Any], encoders: Collection[str]) -> str:
    """The one modality whose data is text and which the model encodes.

    Raises:
        ConfigError: none, or more than one.
    """
    found = [m for m, dm in modalities.items() if isinstance(dm, TextDataModule) and m in encoders]
    if len(found) != 1:
        raise ConfigError(
            f"--zero_shot needs exactly one text modality to embed the class prompts with, found {found} "
            f"(modalities: {sorted(modalities)})"
        )
    return found[0]


def zero_shot(
    arrays: Mapping[str, np.ndarray],
    classes: ClassLabels,
    class_embeddings: Tensor,
    modalities: Sequence[str],
) -> dict[str, dict[str, Any]]:
    """Every modality in ``modalities``: :func:`~mmfuse.models.zero_shot.zero_shot_report` over the
    samples that have it and a class."""
    out: dict[str, dict[str, Any]] = {}
    for m in modalities:
        present = arrays[f"{m}_present"]
        predicted = nearest_class(torch.from_numpy(arrays[m][present]), class_embeddings)
        out[m] = zero_shot_report(predicted, torch.from_numpy(classes.labels[present]), classes.names)
    return out
