"""What :class:`~mmfuse.lit.module.MultimodalModule` measures per stage and task, computed once per epoch."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple, cast

import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric, MetricCollection

from mmfuse.data.manifest.tasks import TaskSpec
from mmfuse.lit.presence import PresenceAccuracy
from mmfuse.lit.task_metrics import TaskLoss, metric_collection, update_metrics

STAGES = ("train", "val", "test")


class EpochValues(NamedTuple):
    """One stage's epoch: what to log."""

    metrics: dict[str, Tensor]
    """every task's metrics, by log key (``val/acc``; several tasks: ``val/<task>/acc``)"""
    task_losses: dict[str, Tensor]
    """with several tasks, each one's mean loss by log key (``val/<task>/loss``)"""
    loss: Tensor
    """the weighted sum of the tasks' mean losses (zero when no task had an observed target)"""


class EpochMetrics(nn.Module):
    """Per stage and task, a torchmetrics collection and the mean loss over observed targets; test
    accuracy per presence pattern.

    Steps only update states (no cross-process sync); :meth:`compute` syncs each state once per epoch
    and resets it. The states are not saved in checkpoints (torchmetrics' default).

    Args:
        tasks: the tasks, in the data's order (see :class:`~mmfuse.data.manifest.tasks.TaskSpec`).
        modalities: the model's modality names (the presence patterns).
    """

    def __init__(self, tasks: list[TaskSpec], modalities: list[str]) -> None:
        super().__init__()
        self.tasks = list(tasks)
        # ModuleDict keys may not shadow nn.Module attributes such as `train`: hence the suffix
        self.collections = nn.ModuleDict(
            {
                f"{s}_": nn.ModuleDict(
                    {t["name"]: metric_collection(t, self.prefix(s, t["name"])) for t in tasks}
                )
                for s in STAGES
            }
        )
        # weighted by each batch's count of observed targets: the mean over the epoch's targets
        self.mean_losses = nn.ModuleDict(
            {f"{s}_": nn.ModuleDict({t["name"]: MeanMetric() for t in tasks}) for s in STAGES}
        )
        self.test_presence = PresenceAccuracy(modalities)

    def prefix(self, stage: str, task: str) -> str:
        """The log keys' prefix: one task ``val/`` (``val/acc``); several ``val/<task>/``."""
        return f"{stage}/" if len(self.tasks) == 1 else f"{stage}/{task}/"

    def collection(self, stage: str, task: str) -> MetricCollection:
        return cast(MetricCollection, cast(nn.ModuleDict, self.collections[f"{stage}_"])[task])

    def mean_loss(self, stage: str, task: str) -> MeanMetric:
        return cast(MeanMetric, cast(nn.ModuleDict, self.mean_losses[f"{stage}_"])[task])

    def update(
        self,
        stage: str,
        logits: Mapping[str, Tensor],
        targets: Mapping[str, Tensor],
        losses: Mapping[str, TaskLoss],
    ) -> None:
        """One batch: each task's outputs (``logits[task]``, ``(B, K)`` or ``(B,)``), targets and loss."""
        for t in self.tasks:
            name = t["name"]
            update_metrics(self.collection(stage, name), t["kind"], logits[name], targets[name])
            if losses[name].observed:
                self.mean_loss(stage, name).update(losses[name].value.detach(), weight=losses[name].observed)

    def compute(
        self, stage: str, weights: Mapping[str, float], sum_over_processes: Callable[[Tensor], Tensor]
    ) -> EpochValues:
        """The stage's epoch values, synced across processes; the states are reset.

        A task with no observed target in the whole epoch (on any process) gives nothing and adds
        nothing to the loss; the one count that decides it is summed over processes once (by
        ``sum_over_processes``), so every process takes the same branch of the syncing computes.

        Args:
            stage: ``train``, ``val`` or ``test``.
            weights: task name -> weight of its mean loss in the total.
            sum_over_processes: a tensor summed over the processes (itself on one).
        """
        names = [t["name"] for t in self.tasks]
        metrics: dict[str, Tensor] = {}
        task_losses: dict[str, Tensor] = {}
        if not names:
            return EpochValues(metrics, task_losses, torch.zeros(()))
        counts = torch.stack([self.mean_loss(stage, n).weight.detach().float().reshape(()) for n in names])
        counts = sum_over_processes(counts)
        total = torch.zeros((), device=counts.device)
        for name, count in zip(names, counts.tolist(), strict=True):
            mean_loss, collection = self.mean_loss(stage, name), self.collection(stage, name)
            if count > 0:
                value = mean_loss.compute()
                total = total + weights[name] * value
                metrics.update(collection.compute())
                if len(names) > 1:
                    task_losses[f"{stage}/{name}/loss"] = value
            mean_loss.reset()
            collection.reset()
        return EpochValues(metrics, task_losses, total)

    def presence(self) -> dict[str, Tensor]:
        """Test accuracy per presence pattern (``test/presence/audio+image/acc`` and ``.../n``) when the
        data has more than one pattern, else nothing; every process calls it (it syncs), and it resets."""
        values = self.test_presence.compute()
        self.test_presence.reset()
        if sum(k.endswith("/n") for k in values) <= 1:
            return {}
        return {f"test/presence/{k}": v for k, v in values.items()}
