"""Per-task losses, metrics and predictions, with missing targets masked out.

Missing targets are ``-1`` (multiclass) or NaN (multilabel, regression; per label for multilabel):
they never enter a loss or a metric's update, and a batch keeps every sample for the other tasks.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassF1Score,
    MultilabelAccuracy,
    MultilabelAUROC,
    MultilabelF1Score,
)
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError, R2Score

from mmfuse.data.manifest.tasks import KINDS, TaskKind, TaskSpec, check_task_name, output_width

RegressionLoss = Literal["mse", "l1", "huber"]


class TaskLoss(NamedTuple):
    """One task's loss on one batch.

    Attributes:
        value: scalar mean over the observed targets; ``0 * sum(output)`` when none is observed,
            so that the task's head stays in the graph (DDP expects a gradient on every parameter).
        observed: how many targets entered the mean (labels, for multilabel).
    """

    value: Tensor
    observed: int


def observed_mask(kind: TaskKind, target: Tensor) -> Tensor:
    """True where a target is known: ``(B,)``, or ``(B, K)`` for multilabel."""
    return target >= 0 if kind == "multiclass" else ~torch.isnan(target)


def hide_targets(kind: TaskKind, target: Tensor, keep: Tensor) -> Tensor:
    """``target`` with the rows where ``keep`` (``(B,)`` bool) is False made missing."""
    if kind == "multiclass":
        return target.masked_fill(~keep, -1)
    keep = keep.view(-1, *[1] * (target.dim() - 1))  # (B,) or (B, 1) for multilabel
    return torch.where(keep, target, torch.full_like(target, float("nan")))


def task_loss(
    kind: TaskKind,
    output: Tensor,
    target: Tensor,
    label_smoothing: float = 0.0,
    regression_loss: RegressionLoss = "mse",
) -> TaskLoss:
    """The loss of one task over its observed targets.

    Args:
        kind: the task's kind.
        output: ``(B, K)`` logits (multiclass, multilabel) or ``(B, 1)`` values (regression).
        target: ``(B,)`` long class indices with ``-1`` missing; ``(B, K)`` float 0/1 with NaN
            missing (multilabel); ``(B,)`` float with NaN missing (regression).
        label_smoothing: label smoothing of the multiclass cross-entropy.
        regression_loss: ``mse``, ``l1`` or ``huber`` (delta 1).

    Returns:
        cross-entropy (multiclass), binary cross-entropy with logits averaged over the observed
        labels (multilabel), or the regression loss over the observed rows; and the count observed.
    """
    known = observed_mask(kind, target)
    n = int(known.sum())
    if n == 0:
        return TaskLoss(output.sum() * 0.0, 0)
    if kind == "multiclass":
        return TaskLoss(F.cross_entropy(output, target, ignore_index=-1, label_smoothing=label_smoothing), n)
    if kind == "multilabel":
        return TaskLoss(F.binary_cross_entropy_with_logits(output[known], target[known]), n)
    prediction, value = output[:, 0][known].float(), target[known]
    if regression_loss == "l1":
        return TaskLoss(F.l1_loss(prediction, value), n)
    if regression_loss == "huber":
        return TaskLoss(F.huber_loss(prediction, value), n)
    return TaskLoss(F.mse_loss(prediction, value), n)


def metric_collection(spec: TaskSpec, prefix: str) -> MetricCollection:
    """The epoch-level metrics of one task, keys ``<prefix><metric>``.

    Multiclass: ``acc``, ``f1`` (macro), ``auroc`` with two classes; multilabel: ``acc``, ``f1``
    (macro) and ``auroc`` (macro) over the labels; regression: ``mae``, ``rmse``, ``r2``.
    """
    k = output_width(spec)
    metrics: dict[str, Any]
    if spec["kind"] == "multiclass":
        metrics = {
            "acc": MulticlassAccuracy(k, average="micro", ignore_index=-1),
            "f1": MulticlassF1Score(k, average="macro", ignore_index=-1),
        }
        if k == 2:
            # with two classes, macro one-vs-rest AUROC equals the binary AUROC of class 1
            metrics["auroc"] = MulticlassAUROC(k, ignore_index=-1)
    elif spec["kind"] == "multilabel":
        metrics = {
            "acc": MultilabelAccuracy(k, average="micro", ignore_index=-1),
            "f1": MultilabelF1Score(k, average="macro", ignore_index=-1),
            "auroc": MultilabelAUROC(k, average="macro", ignore_index=-1),
        }
    else:
        metrics = {"mae": MeanAbsoluteError(), "rmse": MeanSquaredError(squared=False), "r2": R2Score()}
    return MetricCollection(metrics, prefix=prefix)


def update_metrics(metrics: MetricCollection, kind: TaskKind, output: Tensor, target: Tensor) -> int:
    """Update one task's metrics with the observed rows of a batch only; returns how many rows.

    Rows without any observed target are left out (no update at all when there is none); a
    multilabel row's missing labels are passed as ``-1``, which the metrics ignore.
    """
    known = observed_mask(kind, target)
    rows = known.any(dim=1) if kind == "multilabel" else known  # (B,)
    n = int(rows.sum())
    if n == 0:
        return 0
    # probabilities, not logits: torchmetrics applies softmax/sigmoid to a batch only when some value
    # lies outside [0, 1], so a batch of logits that all happen to lie inside would be read as
    # probabilities, and the epoch's result would depend on how samples fall into batches (and ranks)
    output, target = predictions(kind, output.detach()[rows]), target[rows]
    if kind == "multilabel":
        target = torch.where(known[rows], target, torch.full_like(target, -1)).long()  # (n, K)
    metrics.update(output, target)
    return n


def predictions(kind: TaskKind, output: Tensor) -> Tensor:
    """What ``predict`` reports: class probabilities ``(B, K)`` (softmax), label probabilities
    ``(B, K)`` (sigmoid), or values ``(B,)``."""
    output = output.float()
    if kind == "multiclass":
        return output.softmax(dim=-1)
    if kind == "multilabel":
        return output.sigmoid()
    return output[:, 0]


def check_tasks(tasks: list[TaskSpec]) -> list[TaskSpec]:
    """Validate task specs and copy them as plain dicts (``{name, kind, names}``).

    Raises:
        ValueError: a duplicate or unusable name, an unknown kind, or a classification task with
            fewer than one class (multiclass: two).
    """
    out: list[TaskSpec] = []
    for task in tasks:
        name, kind, names = task["name"], task["kind"], [str(n) for n in task.get("names", [])]
        check_task_name(name)
        if kind not in KINDS:
            raise ValueError(f"task {name!r}: kind {kind!r} is not one of {list(KINDS)}")
        if (kind == "multiclass" and len(names) < 2) or (kind == "multilabel" and not names):
            raise ValueError(f"task {name!r} ({kind}) has classes {names}: too few to learn")
        if any(t["name"] == name for t in out):
            raise ValueError(f"task {name!r} is declared twice")
        out.append(TaskSpec(name=name, kind=kind, names=names if kind != "regression" else []))
    return out
