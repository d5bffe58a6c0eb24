"""Zero-shot classification: each sample takes the class whose prompt embedding is nearest (cosine).

CLIP's recipe (Radford et al. 2021): embed one text prompt per class ("a picture of {class}") with
the text encoder, embed the samples with the other modality's encoder, and classify by cosine
similarity. No head and no label is trained; the figure says how well a contrastively trained
model's modalities are aligned on the classes' meaning.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


def nearest_class(embeddings: Tensor, class_embeddings: Tensor) -> Tensor:
    """The index of each sample's most similar class prompt by cosine similarity (the first on a tie).

    Args:
        embeddings: ``(N, D)`` the samples' embeddings.
        class_embeddings: ``(K, D)`` one embedding per class, in class-index order.

    Returns:
        ``(N,)`` long class indices.
    """
    if (
        embeddings.dim() != 2
        or class_embeddings.dim() != 2
        or embeddings.shape[-1] != class_embeddings.shape[-1]
    ):
        raise ValueError(
            f"zero-shot: embeddings (N, D) and class_embeddings (K, D) must share D, got "
            f"{tuple(embeddings.shape)} and {tuple(class_embeddings.shape)}"
        )
    sim = F.normalize(embeddings.float(), dim=-1) @ F.normalize(class_embeddings.float(), dim=-1).T  # (N, K)
    return sim.argmax(dim=1)


def zero_shot_report(predicted: Tensor, labels: Tensor, names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per-class counts and the confusion matrix of zero-shot predictions.

    Args:
        predicted: ``(N,)`` long predicted class indices.
        labels: ``(N,)`` long true class indices; ``-1`` (no label) is left out.
        names: the ``K`` class names, in index order.

    Returns:
        ``{"samples": n, "accuracy": correct / n (NaN when n == 0), "chance": 1 / K,
        "per_class": {name: {"samples", "correct"}}, "confusion": K x K counts [true][predicted]}``.
    """
    known = labels >= 0
    y, p = labels[known].long(), predicted[known].long()
    k = len(names)
    confusion = torch.zeros(k, k, dtype=torch.long)
    confusion.index_put_((y, p), torch.ones_like(y), accumulate=True)
    n = int(known.sum())
    return {
        "samples": n,
        "accuracy": float((y == p).float().mean()) if n else float("nan"),
        "chance": 1.0 / k if k else float("nan"),
        "per_class": {
            name: {"samples": int(confusion[c].sum()), "correct": int(confusion[c, c])}
            for c, name in enumerate(names)
        },
        "confusion": confusion.tolist(),
    }
