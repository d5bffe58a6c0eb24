"""MultimodalModule: the LightningModule that trains a :class:`~mmfuse.models.multimodal.MultimodalModel`."""

from __future__ import annotations

import warnings
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from mmfuse.data.manifest.tasks import TaskSpec, first_multiclass, output_width
from mmfuse.lit.contrastive import ContrastiveObjective
from mmfuse.lit.cpu_threads import share_cores
from mmfuse.lit.data_links import check_data_matches_model
from mmfuse.lit.epoch_metrics import EpochMetrics
from mmfuse.lit.optim import param_groups
from mmfuse.lit.safe_loading import SafeLoading, drop_live_hyperparameters
from mmfuse.lit.schedules import Interval, lr_scheduler_config
from mmfuse.lit.skipped_rows import report_skipped_rows
from mmfuse.lit.task_metrics import RegressionLoss, TaskLoss, check_tasks, predictions, task_loss
from mmfuse.models.fusion.base import Fuser
from mmfuse.models.modality_dropout import drop_modalities
from mmfuse.models.multimodal import ModelOutput, MultimodalModel
from mmfuse.types import Batch


class MultimodalModule(SafeLoading, pl.LightningModule):
    """Trains encoders + fuser + one head per task (multiclass, multilabel, regression).

    Encoders and the fuser are built elsewhere (YAML ``class_path``/``init_args``) and injected.
    The tasks (their names, kinds and class names) are linked from the data by the CLI.
    ``load_from_checkpoint`` reads with ``weights_only=True`` from any source (see ``SafeLoading``).

    Log keys: with one task ``train/loss``, ``val/loss``, ``val/acc``, ``val/f1`` (``val/auroc``
    with two classes; ``val/mae``, ``val/rmse``, ``val/r2`` for regression), ``test/...``; with several,
    ``val/loss`` is the weighted sum of the tasks' mean losses and each task logs ``val/<task>/loss``
    and ``val/<task>/<metric>``. Missing targets are left out of their task's loss and metrics.
    With ``contrastive``: ``train/contrastive_loss``, ``train/temperature`` per step and
    ``val/retrieval/<a>_to_<b>/recall@<k>`` per epoch (``test/...`` likewise).

    Args:
        encoders: modality -> encoder (see ``mmfuse.models.encoders``).
        fusion: the fuser (see ``mmfuse.models.fusion``).
        tasks: the tasks, each ``{name, kind, names}`` (linked from the data; see
            :class:`~mmfuse.data.manifest.tasks.TaskSpec`): a head, a loss and metrics each.
        task_weights: task name -> weight of its loss in the total (default 1 each).
        head_hidden: hidden width of each task head (0: a linear head).
        head_dropout: dropout in the task heads.
        label_smoothing: label smoothing of the multiclass cross-entropy.
        regression_loss: the loss of regression tasks: ``mse``, ``l1`` or ``huber``.
        modality_dropout: in training, each present modality of each sample is dropped (masked as
            absent) with this probability, never all of a sample's modalities, so that the model
            learns to cope with missing inputs. Encoders still run on every batch (a fixed graph for DDP).
        optimizer: optimizer factory, e.g. ``{class_path: torch.optim.AdamW, init_args: {lr: 0.001}}``.
        scheduler: optional learning-rate scheduler factory: ``mmfuse.lit.schedules.WarmupCosine`` or
            ``OneCycle`` (per step, as long as the run), a ``torch.optim.lr_scheduler`` class (per epoch)
            or ReduceLROnPlateau (see :func:`~mmfuse.lit.schedules.lr_scheduler_config`).
        scheduler_interval: ``step`` or ``epoch``; None: per step for mmfuse's schedules, else per epoch.
        scheduler_monitor: the metric a plateau scheduler follows (in its own ``mode``); None: the
            checkpoint's monitor and mode.
        compile: ``torch.compile`` each encoder and the fuser, in place (checkpoint keys are the
            same compiled or not). The first steps are slow while kernels compile.
        contrastive: a cross-modal contrastive objective between the modalities' pooled encoder
            embeddings (:class:`~mmfuse.lit.contrastive.ContrastiveObjective`), added to the task
            losses with its ``weight``; with no task (an unlabelled manifest) it is the only objective
            (contrastive pre-training). Evaluated as retrieval recall@k on val and test.
        pretrained_lr: learning rate of the pretrained backbones of Hugging Face encoders (their own
            optimizer group, see :func:`~mmfuse.lit.optim.param_groups`); None: the optimizer's.
    """

    def __init__(
        self,
        encoders: dict[str, nn.Module],
        fusion: Fuser,
        tasks: list[TaskSpec] | None = None,
        task_weights: dict[str, float] | None = None,
        head_hidden: int = 0,
        head_dropout: float = 0.0,
        label_smoothing: float = 0.0,
        regression_loss: RegressionLoss = "mse",
        modality_dropout: float = 0.0,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: Interval | None = None,
        scheduler_monitor: str | None = None,
        compile: bool = False,
        contrastive: ContrastiveObjective | None = None,
        pretrained_lr: float | None = None,
    ) -> None:
        super().__init__()
        # built in Python, the encoders and fuser are live objects: dropped, not warned about
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`")
            self.save_hyperparameters()
        drop_live_hyperparameters(self.hparams)
        self.contrastive = contrastive
        self.pretrained_lr = pretrained_lr
        #: the tasks, as plain dicts, in the data's order
        self.tasks: list[TaskSpec] = check_tasks(tasks or [])
        self.hparams["tasks"] = [dict(t) for t in self.tasks]  # plain, whatever type was passed
        if not self.tasks and not self.has_aux_losses:
            raise ValueError(
                "MultimodalModule has no task and no auxiliary objective: give the data a target "
                "(`target`, or `tasks` in the data source), or set model.contrastive for contrastive "
                "pre-training, so that there is something to learn"
            )
        names = [t["name"] for t in self.tasks]
        unknown = sorted(set(task_weights or {}) - set(names))
        if unknown:
            raise ValueError(f"task_weights names tasks {unknown} that are not among the tasks {names}")
        self.task_weights = {n: float((task_weights or {}).get(n, 1.0)) for n in names}
        if any(w < 0 for w in self.task_weights.values()):
            raise ValueError(f"task_weights must be >= 0, got {self.task_weights}")
        self.label_smoothing = label_smoothing
        self.regression_loss: RegressionLoss = regression_loss
        if not 0 <= modality_dropout < 1:
            raise ValueError(f"modality_dropout must be in [0, 1), got {modality_dropout}")
        self.modality_dropout = modality_dropout
        #: modalities the model may see; the others are treated as absent (``mmfuse ablate`` sets it)
        self.keep_modalities: frozenset[str] | None = None
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval: Interval | None = scheduler_interval
        self.scheduler_monitor = scheduler_monitor
        by_name = {t["name"]: t for t in self.tasks}
        outputs = {n: output_width(t) for n, t in by_name.items()}
        self.model = MultimodalModel(encoders, fusion, outputs, head_hidden, head_dropout)
        if contrastive is not None:
            contrastive.bind(list(self.model.encoders))  # its pairs and their recall metrics
        if compile:
            # the parts, not the LightningModule: Lightning's hooks and logging stay in eager Python
            for part in (*self.model.encoders.values(), self.model.fusion):
                part.compile()
        #: per stage and task: metric objects and mean losses, computed once per epoch
        self.metrics = EpochMetrics(self.tasks, list(self.model.encoders))

    # --- tasks -----------------------------------------------------------------------------------

    @property
    def task(self) -> str | None:
        """The first multiclass task (what the presence breakdown, W&B media and ablations show), or None."""
        first = first_multiclass(self.tasks)
        return first["name"] if first else None

    @property
    def class_names(self) -> list[str]:
        """The class names of :attr:`task` (``[]`` without a multiclass task)."""
        return next((list(t["names"]) for t in self.tasks if t["name"] == self.task), [])

    @property
    def has_aux_losses(self) -> bool:
        """Whether :meth:`aux_losses` adds an objective beside the tasks."""
        return self.contrastive is not None

    def aux_losses(self, output: ModelOutput, present: dict[str, Tensor]) -> dict[str, Tensor]:
        """Training objectives beside the tasks, name -> weighted scalar loss, added to the total.

        The contrastive loss over ``output.embeddings``, with the presence the model saw (after
        modality dropout). Override it together with :attr:`has_aux_losses` for another objective
        that needs no target.
        """
        if self.contrastive is None:
            return {}
        loss = self.contrastive.loss(output.embeddings, present).loss
        return {"contrastive": self.contrastive.weight * loss}

    # --- steps -----------------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is not None:
            report_skipped_rows(self.trainer, datamodule)  # after the data's setup, which chose the rows
            check_data_matches_model(datamodule, self.model)
            share_cores(getattr(datamodule, "num_workers", 0), self.trainer.num_devices)

    def forward(self, batch: Batch, present: dict[str, Tensor] | None = None) -> ModelOutput:
        """The model's output; ``present`` defaults to :meth:`effective_present`."""
        return self.model(batch.inputs, self.effective_present(batch) if present is None else present)

    def effective_present(self, batch: Batch) -> dict[str, Tensor]:
        """``batch.present`` without the modalities outside ``keep_modalities`` and, in training,
        after modality dropout."""
        present = dict(batch.present)
        if self.keep_modalities is not None:
            present = {m: p & (m in self.keep_modalities) for m, p in present.items()}
        if self.training and self.modality_dropout > 0:
            present = drop_modalities(present, self.modality_dropout)
        return present

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

    def _step(self, stage: str, batch: Batch) -> tuple[ModelOutput, dict[str, TaskLoss], Tensor]:
        present = self.effective_present(batch)  # drawn once: the model and every objective see the same
        output = self(batch, present)
        losses = self.task_losses(output, batch)
        # auxiliary objectives train only: the contrastive loss gathers every rank's batch, a collective
        # that would hang evaluation where ranks have different numbers of batches; evaluation measures
        # the alignment as retrieval recall instead, synced once per epoch
        aux = self.aux_losses(output, present) if stage == "train" else {}
        if stage == "train":
            for name, value in aux.items():
                self.log(f"train/{name}_loss", value.detach(), on_step=True, batch_size=len(batch))
            if self.contrastive is not None:
                temperature = self.contrastive.temperature
                self.log("train/temperature", temperature, on_step=True, batch_size=len(batch))
        elif self.contrastive is not None:
            self.contrastive.update(stage, output.embeddings, present)
        self.metrics.update(stage, output.logits, batch.targets, losses)
        return output, losses, self.total_loss(losses, aux)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        _, _, loss = self._step("train", batch)
        # per-step loss without a cross-process sync; the metric objects sync once per epoch
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=len(batch))
        return loss

    def on_train_epoch_end(self) -> None:
        # logged once here, not handed to self.log at every step: each self.log call costs ~1 ms of
        # Lightning bookkeeping on CPU, a measurable share of a small model's step (benchmarks/overhead.py)
        self._log_epoch("train")

    def _eval_step(self, stage: str, batch: Batch) -> None:
        output, _, _ = self._step(stage, batch)
        task = self.task
        if stage == "test" and task is not None:
            target = batch.targets[task]
            presence = self.metrics.test_presence
            presence.update(output.logits[task].detach(), target, self.effective_present(batch))

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step("val", batch)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step("test", batch)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")
        # test metrics by presence pattern (e.g. test/presence/audio+image/acc), when the data has
        # more than one; compute() has summed the counts over processes already
        if self.task is not None:
            self.log_dict(self.metrics.presence())

    def _log_epoch(self, stage: str) -> None:
        """Compute, log and reset the stage's metrics (:meth:`EpochMetrics.compute` syncs them)."""
        show = stage == "val"
        if self.contrastive is not None and stage != "train":
            self.log_dict(self.contrastive.compute(stage))
            self.contrastive.reset(stage)
        if not self.tasks:
            return
        values = self.metrics.compute(stage, self.task_weights, self._sum_over_processes)
        self.log_dict(values.metrics, prog_bar=show)
        self.log_dict(values.task_losses)
        if stage != "train":  # train/loss is logged per step
            self.log(f"{stage}/loss", values.loss, prog_bar=show)

    def _sum_over_processes(self, value: Tensor) -> Tensor:
        return self.trainer.strategy.reduce(value, reduce_op="sum") if self.trainer.world_size > 1 else value

    def predict_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        output = self(batch)
        # task -> class probabilities (B, K), label probabilities (B, K) or values (B,)
        outputs = {t["name"]: predictions(t["kind"], output.logits[t["name"]]).cpu() for t in self.tasks}
        # the true targets too (-1 / NaN where unknown), so that the predictions can be joined to them
        targets = {
            t["name"]: batch.targets[t["name"]].cpu() for t in self.tasks if t["name"] in batch.targets
        }
        # each modality's pooled encoding and the fused features, with presence (`mmfuse embed`)
        embeddings = {m: e.cpu() for m, e in output.embeddings.items()}
        present = {m: p.bool().cpu() for m, p in self.effective_present(batch).items()}
        return {
            "ids": batch.ids,
            "outputs": outputs,
            "targets": targets,
            "embeddings": embeddings,
            "fused": output.fused.pooled.cpu(),
            "present": present,
        }

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(param_groups(self, self.pretrained_lr))
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        config = lr_scheduler_config(scheduler, self.trainer, self.scheduler_interval, self.scheduler_monitor)
        return {"optimizer": optimizer, "lr_scheduler": config}
