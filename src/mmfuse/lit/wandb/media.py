"""WandbMedia: a prediction table, cross-modal attention maps and a test confusion matrix in W&B."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.apply_func import move_data_to_device
from pytorch_lightning.loggers import WandbLogger
from torch import Tensor, nn
from torchmetrics import SumMetric
from torchmetrics.classification import MulticlassConfusionMatrix

from mmfuse.lit.presence import pattern_name
from mmfuse.lit.wandb.attention_maps import attention_panels
from mmfuse.lit.wandb.figures import confusion_figure, figure_pixels, safe_name
from mmfuse.lit.wandb.run_identity import is_live
from mmfuse.lit.wandb.val_samples import MEDIA_KINDS, FixedSamples, fixed_val_samples, media_value


class WandbMedia(pl.Callback):
    """Logs what is easier to look at than to read, when the trainer has a W&B logger (rank 0 only).

    With several tasks, the table and the confusion matrix show the first multiclass task (none
    without one).

    - ``val/predictions``: a ``wandb.Table`` of the same ``num_samples`` validation samples every
      time (chosen by id, every class in turn, so runs compare): their inputs as media (images,
      audio, text), the true label, the prediction and one ``prob_<class>`` column per class.
      Logged at the first validation epoch, every ``every_n_epochs`` after it, and the last.
    - ``val_samples/<modality>``: the same samples' images and audio, once, as media panels.
    - ``attention/<query>_to_<key>``: for fusers that return attention weights (cross-modal
      attention, early, bottleneck, Perceiver), heatmaps of ``attention_samples`` of those samples:
      the query's real tokens (rows: a modality's, or the Perceiver's latents) against the key
      modality's real tokens (columns), averaged over heads, with a colour bar; text tokens are
      labelled with the tokens themselves, other tokens with their positions. Padding is left out
      (:mod:`~mmfuse.lit.wandb.attention_maps`).
    - ``test/confusion_matrix``: a W&B confusion-matrix chart of the test set, and the same counts
      as a labelled figure (``test/confusion_matrix_image``: class names on both axes, rows true
      class, columns predicted, the count in each cell, a colour bar). Under ``mmfuse ablate``, each
      subset's matrix under its own keys and title: ``test/confusion_matrix/audio`` and
      ``test/confusion_matrix_image/audio`` titled "Test confusion matrix, audio only", and ", 18
      without audio" after it when 18 of the test samples have none of the subset's modalities.

    Keys and media file names hold only letters, digits, ``_``, ``.``, ``-`` and ``/`` (a modality
    name with other characters is rewritten, see :func:`~mmfuse.lit.wandb.figures.safe_name`).

    Without a W&B logger it does nothing.

    Args:
        every_n_epochs: log the table and attention maps every N validation epochs (plus the first and last).
        num_samples: validation samples in the table (K).
        attention_samples: how many of those samples get attention maps (0: none).
        confusion_matrix: log the confusion matrix at test.
    """

    def __init__(
        self,
        every_n_epochs: int = 5,
        num_samples: int = 8,
        attention_samples: int = 4,
        confusion_matrix: bool = True,
    ) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs={every_n_epochs} must be >= 1")
        self.every_n_epochs = every_n_epochs
        self.num_samples = num_samples
        self.attention_samples = attention_samples
        self.confusion_matrix = confusion_matrix
        self._samples: FixedSamples | None = None
        self._media_logged = False
        self._val_epochs = 0
        self._matrix: MulticlassConfusionMatrix | None = None
        self._without: SumMetric | None = None  # ablation: test samples with none of the kept modalities
        self._logits: dict[str, Tensor] | None = None
        self._hook: Any = None

    @staticmethod
    def _logger(trainer: pl.Trainer) -> WandbLogger | None:
        return next((lg for lg in trainer.loggers if isinstance(lg, WandbLogger)), None)

    @staticmethod
    def _log(trainer: pl.Trainer, logger: WandbLogger, payload: dict[str, Any]) -> None:
        logger.experiment.log({**payload, "trainer/global_step": trainer.global_step})

    # --- validation: prediction table and attention maps ---------------------------------------

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        count, self._val_epochs = self._val_epochs, self._val_epochs + 1
        last = trainer.current_epoch + 1 == trainer.max_epochs
        if not (count % self.every_n_epochs == 0 or last) or self.num_samples <= 0:
            return
        logger = self._logger(trainer)
        model = getattr(pl_module, "model", None)
        if not trainer.is_global_zero or logger is None or model is None or not is_live(logger.experiment):
            return
        if getattr(pl_module, "task", None) is None:
            return  # the table shows the first multiclass task: without one there is nothing to show
        if self._samples is None:
            self._samples = fixed_val_samples(trainer, self.num_samples)
        if self._samples is None:
            return
        probs, attention, masks = self._predict(trainer, pl_module, self._samples)
        payload = {"val/predictions": self._table(pl_module, self._samples, probs, trainer.current_epoch)}
        if not self._media_logged:
            payload.update(self._sample_media(pl_module, self._samples))
            self._media_logged = True
        payload.update(self._attention_maps(pl_module, self._samples, attention, masks))
        self._log(trainer, logger, payload)

    def _predict(
        self, trainer: pl.Trainer, pl_module: Any, samples: FixedSamples
    ) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
        """Class probabilities ``(K, C)``, the fuser's attention and each encoder's token mask."""
        model = pl_module.model
        model = getattr(model, "_orig_mod", model)  # past torch.compile: no recompilation for K samples
        masks: dict[str, Tensor] = {}
        encoders: dict[str, nn.Module] = dict(getattr(model, "encoders", {}))
        hooks = [enc.register_forward_hook(partial(_keep_mask, masks, m)) for m, enc in encoders.items()]
        batch = move_data_to_device(samples.batch, pl_module.device)
        was_training = model.training
        model.eval()
        try:
            # the modalities the module lets the model see (an ablation may hide some)
            present = getattr(pl_module, "effective_present", lambda b: b.present)(batch)
            with torch.no_grad(), trainer.precision_plugin.forward_context():
                out = model(batch.inputs, present)
        finally:
            model.train(was_training)
            for hook in hooks:
                hook.remove()
        # the fuser's effective masks: a token counts only where its modality is present
        masks = {m: (mask & present[m][:, None]).cpu() for m, mask in masks.items()}
        attention = {k: w.float().cpu() for k, w in out.fused.attention.items()}
        return out.logits[pl_module.task].float().softmax(dim=-1).cpu(), attention, masks

    def _label(self, pl_module: Any, samples: FixedSamples, b: int) -> str | None:
        target = samples.batch.targets.get(getattr(pl_module, "task", ""), None)
        index = int(target[b]) if target is not None else -1
        return pl_module.class_names[index] if index >= 0 else None

    def _table(self, pl_module: Any, samples: FixedSamples, probs: Tensor, epoch: int) -> Any:
        import wandb

        names: list[str] = list(pl_module.class_names)
        modalities = samples.modalities
        columns: list[Any] = [
            "id",
            *modalities,
            "label",
            "prediction",
            *(f"prob_{c}" for c in names),
            "epoch",
        ]
        data = []
        for b, sample_id in enumerate(samples.ids):
            media = [media_value(samples.views[b][m]) for m in modalities]
            predicted = names[int(probs[b].argmax())]
            data.append(
                [sample_id, *media, self._label(pl_module, samples, b), predicted, *probs[b].tolist(), epoch]
            )
        return wandb.Table(columns=columns, data=data)

    def _sample_media(self, pl_module: Any, samples: FixedSamples) -> dict[str, Any]:
        payload: dict[str, Any] = {}
        for m in samples.modalities:
            values = [
                media_value(view, f"{sid} ({self._label(pl_module, samples, b)})")
                for b, sid in enumerate(samples.ids)
                if (view := samples.views[b][m]) is not None and view.kind in MEDIA_KINDS
            ]
            values = [v for v in values if v is not None and not isinstance(v, str)]
            if values:
                payload[f"val_samples/{safe_name(m)}"] = values
        return payload

    def _attention_maps(
        self,
        pl_module: Any,
        samples: FixedSamples,
        attention: dict[str, Tensor],
        masks: dict[str, Tensor],
    ) -> dict[str, Any]:
        import wandb

        def describe(b: int) -> str:
            return f"{samples.ids[b]} ({self._label(pl_module, samples, b)})"

        payload: dict[str, list[Any]] = {}
        for panel in attention_panels(attention, masks, samples, self.attention_samples, describe):
            image = wandb.Image(figure_pixels(panel.figure), caption=panel.caption)
            payload.setdefault(panel.key, []).append(image)
        return dict(payload)

    # --- test: confusion matrix ------------------------------------------------------------------

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        model = getattr(pl_module, "model", None)
        if not self.confusion_matrix or self._logger(trainer) is None or model is None:
            return
        if getattr(pl_module, "task", None) is None:
            return  # the matrix is the first multiclass task's
        num_classes = len(pl_module.class_names)
        self._matrix = MulticlassConfusionMatrix(num_classes, ignore_index=-1).to(pl_module.device)
        if getattr(pl_module, "keep_modalities", None) is not None:  # set by `mmfuse ablate`
            self._without = SumMetric().to(pl_module.device)
        self._hook = model.register_forward_hook(self._keep_logits)

    def _keep_logits(self, module: nn.Module, args: Any, output: Any) -> None:
        self._logits = getattr(output, "logits", None)  # task -> (B, K)

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self._matrix is None or self._logits is None:
            return
        task = pl_module.task
        self._matrix.update(self._logits[task].detach(), batch.targets[task])
        self._logits = None
        if self._without is not None:
            kept = pl_module.keep_modalities
            has_input = torch.stack([p.bool() for m, p in batch.present.items() if m in kept]).any(0)
            self._without.update((~has_input).sum())

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if self._matrix is None:
            return
        counts = self._matrix.compute().long().cpu()  # (K, K) rows true, columns predicted; all ranks
        without = int(self._without.compute()) if self._without is not None else 0  # all ranks too
        self._hook.remove()
        self._matrix, self._hook, self._without = None, None, None
        logger = self._logger(trainer)
        if not trainer.is_global_zero or logger is None or not is_live(logger.experiment) or not counts.sum():
            return
        subset = getattr(pl_module, "keep_modalities", None)  # set by `mmfuse ablate`
        payload = _confusion_payload(counts, list(pl_module.class_names), subset, without)
        self._log(trainer, logger, payload)


def _keep_mask(masks: dict[str, Tensor], name: str, module: nn.Module, args: Any, output: Any) -> None:
    mask = getattr(output, "mask", None)
    if mask is not None:
        masks[name] = mask


def _confusion_payload(
    counts: Tensor, names: list[str], subset: Iterable[str] | None = None, without: int = 0
) -> dict[str, Any]:
    """The chart and the figure; ``subset``: the modalities an ablation kept, which then names the keys
    (``test/confusion_matrix/audio``, ``test/confusion_matrix_image/audio``) and the titles, so each
    subset's matrix stands apart; ``without``: how many of its samples have none of them (counted in
    the matrix, answered without input), said in the title when there are any."""
    import wandb

    title, scope, key, image_key = (
        "Test confusion matrix",
        "test",
        "test/confusion_matrix",
        "test/confusion_matrix_image",
    )
    if subset is not None:
        kept = pattern_name(sorted(subset))
        title, scope = f"{title}, {kept} only", f"test with {kept} only (ablation)"
        if without:
            title += f", {without} without {kept}"
            scope += f"; {without} samples have no {kept} and are answered without input"
        # the subset last, never a suffix of the key: "audio" + "_image" would be "audio+image"'s key
        key, image_key = (f"{k}/{safe_name(kept)}" for k in (key, image_key))  # audio+image -> audio_image
    K = len(names)
    pairs = [(t, p) for t in range(K) for p in range(K) for _ in range(int(counts[t, p]))]
    chart = wandb.plot.confusion_matrix(
        y_true=[t for t, _ in pairs],
        preds=[p for _, p in pairs],
        class_names=names,
        title=title,
    )
    caption = f"{scope}: rows true class, columns predicted, classes in order {names}"
    figure = confusion_figure(counts, names, title=title)
    return {key: chart, image_key: wandb.Image(figure_pixels(figure), caption=caption)}
