"""MultimodalModule: the LightningModule that trains a :class:`~mmfuse.models.multimodal.MultimodalModel`."""

from __future__ import annotations

import warnings
from typing import Any, cast

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassAUROC, MulticlassF1Score

from mmfuse.data.base import ModalityDataModule
from mmfuse.lit.presence import PresenceAccuracy
from mmfuse.models.fusion.base import Fuser
from mmfuse.models.masking import drop_modalities
from mmfuse.models.multimodal import ModelOutput, MultimodalModel
from mmfuse.types import Batch

STAGES = ("train", "val", "test")


class MultimodalModule(pl.LightningModule):
    """Trains encoders + fuser + head on one classification task.

    Encoders and the fuser are built elsewhere (YAML ``class_path``/``init_args``) and injected.
    The number of classes, their names and the task name are linked from the data by the CLI.

    Args:
        encoders: modality -> encoder (see ``mmfuse.models.encoders``).
        fusion: the fuser (see ``mmfuse.models.fusion``).
        num_classes: number of classes ``K`` (linked from the data).
        class_names: class names in index order (linked from the data; written back by ``predict``).
        task: name of the target (linked from the data; key of ``Batch.targets``).
        head_hidden: hidden width of the classification head (0: a linear head).
        head_dropout: dropout in the classification head.
        label_smoothing: label smoothing of the cross-entropy loss.
        modality_dropout: in training, each present modality of each sample is dropped (masked as
            absent) with this probability, never all of a sample's modalities, so that the model
            learns to cope with missing inputs. Encoders still run on every batch (a fixed graph for DDP).
        optimizer: optimizer factory, e.g. ``{class_path: torch.optim.AdamW, init_args: {lr: 0.001}}``.
        scheduler: optional learning-rate scheduler factory, stepped every epoch.
        compile: ``torch.compile`` each encoder and the fuser, in place (checkpoint keys are the
            same compiled or not). The first steps are slow while kernels compile.
    """

    def __init__(
        self,
        encoders: dict[str, nn.Module],
        fusion: Fuser,
        num_classes: int = 2,
        class_names: list[str] | None = None,
        task: str = "label",
        head_hidden: int = 0,
        head_dropout: float = 0.0,
        label_smoothing: float = 0.0,
        modality_dropout: float = 0.0,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        scheduler: LRSchedulerCallable | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__()
        # Under the CLI the hyper-parameters are the plain config (class paths and init args), which
        # load_from_checkpoint re-instantiates. Built in Python, they are live objects: drop those, so
        # every checkpoint still loads with torch.load(weights_only=True) (hence no warning about them).
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`")
            self.save_hyperparameters()
        for key in [k for k, v in self.hparams.items() if isinstance(v, nn.Module | dict) and _has_live(v)]:
            self.hparams.pop(key)
        for key in ("optimizer", "scheduler"):
            if callable(self.hparams.get(key)):
                self.hparams.pop(key)
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names but num_classes={num_classes}")
        self.class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        self.task = task
        self.label_smoothing = label_smoothing
        if not 0 <= modality_dropout < 1:
            raise ValueError(f"modality_dropout must be in [0, 1), got {modality_dropout}")
        self.modality_dropout = modality_dropout
        #: modalities the model may see; the others are treated as absent (``mmfuse ablate`` sets it)
        self.keep_modalities: frozenset[str] | None = None
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.model = MultimodalModel(encoders, fusion, num_classes, head_hidden, head_dropout)
        if compile:
            # the parts, not the LightningModule: Lightning's hooks and logging stay in eager Python
            for part in (*self.model.encoders.values(), self.model.fusion):
                part.compile()
        # ModuleDict keys may not shadow nn.Module attributes such as `train`: hence the suffix
        self.metrics = nn.ModuleDict({f"{s}_": self._metric_collection(s, num_classes) for s in STAGES})
        self.mean_loss = nn.ModuleDict({f"{s}_": MeanMetric() for s in ("val", "test")})
        self.test_presence = PresenceAccuracy(list(self.model.encoders))

    @staticmethod
    def _metric_collection(stage: str, num_classes: int) -> MetricCollection:
        metrics: dict[str, Any] = {
            "acc": MulticlassAccuracy(num_classes, average="micro", ignore_index=-1),
            "f1": MulticlassF1Score(num_classes, average="macro", ignore_index=-1),
        }
        if num_classes == 2:
            # with two classes, macro one-vs-rest AUROC equals the binary AUROC of class 1
            metrics["auroc"] = MulticlassAUROC(num_classes, ignore_index=-1)
        return MetricCollection(metrics, prefix=f"{stage}/")

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is not None:
            check_data_matches_model(datamodule, self.model)

    def _metrics(self, stage: str) -> MetricCollection:
        return cast(MetricCollection, self.metrics[f"{stage}_"])

    def _mean_loss(self, stage: str) -> MeanMetric:
        return cast(MeanMetric, self.mean_loss[f"{stage}_"])

    def forward(self, batch: Batch) -> ModelOutput:
        return self.model(batch.inputs, self.effective_present(batch))

    def effective_present(self, batch: Batch) -> dict[str, Tensor]:
        """``batch.present`` without the modalities outside ``keep_modalities`` and, in training,
        after modality dropout."""
        present = dict(batch.present)
        if self.keep_modalities is not None:
            present = {m: p & (m in self.keep_modalities) for m, p in present.items()}
        if self.training and self.modality_dropout > 0:
            present = drop_modalities(present, self.modality_dropout)
        return present

    def _loss(self, logits: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(logits, target, ignore_index=-1, label_smoothing=self.label_smoothing)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        logits = self(batch).logits
        target = batch.targets[self.task]
        loss = self._loss(logits, target)
        # per-step loss without a cross-process sync; the metric objects sync once per epoch
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=len(batch))
        self._metrics("train").update(logits.detach(), target)
        return loss

    def on_train_epoch_end(self) -> None:
        # logged once here, not handed to self.log at every step: each self.log call costs ~1 ms of
        # Lightning bookkeeping on CPU, a measurable share of a small model's step (benchmarks/overhead.py)
        metrics = self._metrics("train")
        self.log_dict(metrics.compute())  # compute() syncs the counts across processes under DDP
        metrics.reset()

    def _eval_step(self, stage: str, batch: Batch) -> None:
        logits = self(batch).logits
        target = batch.targets[self.task]
        labelled = target >= 0
        if labelled.any():
            self._mean_loss(stage).update(self._loss(logits, target), weight=int(labelled.sum()))
        self._metrics(stage).update(logits, target)
        if stage == "test":
            self.test_presence.update(logits, target, self.effective_present(batch))
        show = stage == "val"
        self.log(f"{stage}/loss", self._mean_loss(stage), on_step=False, on_epoch=True, prog_bar=show)
        self.log_dict(self._metrics(stage), on_step=False, on_epoch=True, prog_bar=show)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step("val", batch)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step("test", batch)

    def on_test_epoch_end(self) -> None:
        # test metrics by presence pattern (e.g. test/presence/audio+image/acc), when the data has
        # more than one; compute() has summed the counts over processes already
        values = self.test_presence.compute()  # every process calls it: it syncs under DDP
        if sum(k.endswith("/n") for k in values) > 1:
            for key, value in values.items():
                self.log(f"test/presence/{key}", value)
        self.test_presence.reset()

    def predict_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        probs = self(batch).logits.float().softmax(dim=-1)  # (B, K)
        return {"ids": batch.ids, "probs": probs.cpu()}

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}


def check_data_matches_model(datamodule: pl.LightningDataModule, model: MultimodalModel) -> None:
    """The data's modalities must be the encoders', and what each modality's data implies about its
    encoder (vocabulary size, channels, mel bins) must hold: a clear error now, not a shape error later.
    """
    if isinstance(datamodule, ModalityDataModule):
        modalities = {datamodule.name: datamodule}
    else:
        modalities = dict(getattr(datamodule, "modalities", {}))
    if sorted(modalities) != sorted(model.encoders):
        raise ValueError(
            f"the data has modalities {sorted(modalities)} but the model has encoders "
            f"{sorted(model.encoders)}: data.modalities and model.encoders must use the same names"
        )
    for name, dm in modalities.items():
        encoder = model.encoders[name]
        for attr, value in dm.encoder_requirements().items():
            have = getattr(encoder, attr, None)
            if have is not None and have != value:
                raise ValueError(
                    f"modality {name!r}: the data gives {attr}={value} but encoder {type(encoder).__name__} "
                    f"has {attr}={have}; set model.encoders.{name}.init_args.{attr}: {value}"
                )


def _has_live(value: Any) -> bool:
    """True if a hyper-parameter value holds an nn.Module (not a plain config dict)."""
    if isinstance(value, nn.Module):
        return True
    if isinstance(value, dict):
        return any(_has_live(v) for v in value.values())
    return False
