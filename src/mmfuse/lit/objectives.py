"""The training objective of :class:`~mmfuse.lit.module.MultimodalModule`: the task losses, their
weighted total, and the auxiliary objectives beside them (contrastive, unimodal heads)."""

from __future__ import annotations

import torch
from torch import Tensor

from mmfuse.data.manifest.tasks import TaskSpec
from mmfuse.lit.contrastive import ContrastiveObjective
from mmfuse.lit.task_metrics import RegressionLoss, TaskLoss, hide_targets, task_loss
from mmfuse.models.multimodal import ModelOutput, MultimodalModel
from mmfuse.types import Batch


class Objectives:
    """Mixin of MultimodalModule: what it minimises. The module's constructor sets the attributes."""

    tasks: list[TaskSpec]
    task_weights: dict[str, float]
    label_smoothing: float
    regression_loss: RegressionLoss
    contrastive: ContrastiveObjective | None
    unimodal_loss: float
    model: MultimodalModel
    device: torch.device

    @property
    def has_aux_losses(self) -> bool:
        """Whether :meth:`aux_losses` adds an objective beside the tasks."""
        return self.contrastive is not None

    def aux_losses(self, output: ModelOutput, present: dict[str, Tensor], batch: Batch) -> dict[str, Tensor]:
        """Training objectives beside the tasks, name -> weighted scalar loss, added to the total.

        The contrastive loss over ``output.embeddings`` and the unimodal heads' losses, with the
        presence the model saw (after modality dropout). Override it together with
        :attr:`has_aux_losses` for another objective.
        """
        aux: dict[str, Tensor] = {}
        if self.contrastive is not None:
            aux["contrastive"] = (
                self.contrastive.weight * self.contrastive.loss(output.embeddings, present).loss
            )
        if self.unimodal_loss > 0:
            terms = [
                self.task_weights[t["name"]]
                * task_loss(
                    t["kind"],
                    logits,
                    hide_targets(t["kind"], batch.targets[t["name"]], present[m]),
                    self.label_smoothing,
                    self.regression_loss,
                ).value
                for t in self.tasks
                for m, logits in output.unimodal[t["name"]].items()
            ]
            aux["unimodal"] = self.unimodal_loss * torch.stack(terms).sum() / len(self.model.encoders)
        return aux

    def task_losses(self, output: ModelOutput, batch: Batch) -> dict[str, TaskLoss]:
        """Each task's loss over its observed targets in the batch."""
        return {
            t["name"]: task_loss(
                t["kind"],
                output.logits[t["name"]],
                batch.targets[t["name"]],
                self.label_smoothing,
                self.regression_loss,
            )
            for t in self.tasks
        }

    def total_loss(self, losses: dict[str, TaskLoss], aux: dict[str, Tensor]) -> Tensor:
        """Weighted sum of the task losses (a task without an observed target adds a zero that keeps
        its head in the graph) plus the auxiliary losses."""
        terms = [self.task_weights[name] * loss.value for name, loss in losses.items()]
        if not terms and not aux:  # evaluating a model without tasks: nothing to add up
            return torch.zeros((), device=self.device)
        return torch.stack([*terms, *aux.values()]).sum()
