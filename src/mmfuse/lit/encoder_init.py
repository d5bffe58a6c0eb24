"""InitEncoders: a fit starts from another run's encoder weights (e.g. contrastive pre-training)."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from torch import nn

from mmfuse.lit.checkpoint_source import CheckpointError, local_checkpoint
from mmfuse.lit.safe_loading import load_checkpoint_file

PREFIX = "model.encoders."  # where MultimodalModule keeps an encoder's weights in its state dict


class InitEncoders(Callback):
    """Copies encoder weights from a checkpoint into the model before the first step of ``fit``.

    The fuser, the heads and the optimizer start afresh: this is "start from pre-trained encoders",
    not resuming (``--ckpt_path`` resumes a run). A resumed run restores its own weights after this
    copy, so the copy never overrides them. Typical use: encoders pre-trained with the contrastive
    objective and no labels, then a task learnt from a few labels::

        --trainer.callbacks+=mmfuse.lit.encoder_init.InitEncoders
        --trainer.callbacks.ckpt_path=runs/pretrain/.../best.ckpt --trainer.callbacks.freeze=true

    With ``freeze`` the copied encoders get no gradient and stay in eval mode (no dropout, batch-norm
    statistics kept); with ``LateFusion`` and ``head_hidden: 0`` the model is then a linear probe of
    each encoder's mean-pooled tokens.

    The checkpoint's data state must match where the weights depend on it: a text encoder's token
    embeddings are rows of the checkpoint's vocabulary, so a different vocabulary is refused (the
    vocabulary is learnt from the train split's texts, labelled or not: the same manifest gives the same one).

    Args:
        ckpt_path: the checkpoint (a path or URL), read with ``weights_only=True``.
        modalities: the encoders to copy; None: every encoder of this model that the checkpoint has.
        freeze: keep the copied encoders fixed.
    """

    def __init__(self, ckpt_path: str, modalities: list[str] | None = None, freeze: bool = False) -> None:
        super().__init__()
        self.ckpt_path = ckpt_path
        self.modalities = None if modalities is None else list(modalities)
        self.freeze = freeze
        self._frozen: list[nn.Module] = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        encoders: nn.ModuleDict = pl_module.model.encoders  # type: ignore[union-attr, assignment]
        file = local_checkpoint(self.ckpt_path)
        checkpoint = load_checkpoint_file(file, map_location="cpu", source=self.ckpt_path)
        state: dict[str, Any] = checkpoint.get("state_dict", {})
        have = sorted({k[len(PREFIX) :].split(".", 1)[0] for k in state if k.startswith(PREFIX)})
        names = self.modalities if self.modalities is not None else [m for m in encoders if m in have]
        missing = sorted(set(names) - set(have) | set(names) - set(encoders))
        if missing or not names:
            raise CheckpointError(
                f"InitEncoders: checkpoint {self.ckpt_path} has encoders {have}, this model "
                f"{sorted(encoders)}; cannot copy {missing or 'any'}"
            )
        _check_data(checkpoint, trainer.datamodule, names, self.ckpt_path)  # type: ignore[attr-defined]
        for m in names:
            prefix = f"{PREFIX}{m}."
            weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            try:
                encoders[m].load_state_dict(weights)
            except RuntimeError as e:  # a different architecture: name it, not torch's wall of keys
                reason = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
                raise CheckpointError(
                    f"InitEncoders: the {m!r} encoder of {self.ckpt_path} does not fit this model's "
                    f"(configure it as it was pre-trained): {reason}"
                ) from None
            if self.freeze:
                encoders[m].requires_grad_(False)
                self._frozen.append(encoders[m])

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        for encoder in self._frozen:  # Lightning puts the whole model in train mode after each validation
            encoder.eval()


def _check_data(checkpoint: dict[str, Any], data: Any, names: list[str], source: str) -> None:
    """Refuse a checkpoint whose modality state (a learnt vocabulary) differs from this run's data's."""
    saved = (checkpoint.get(type(data).__qualname__) or {}).get("modalities", {})
    modalities = getattr(data, "modalities", {})
    for m in names:
        if m in saved and m in modalities and saved[m] != modalities[m].state_dict():
            raise CheckpointError(
                f"InitEncoders: the {m!r} data of {source} differs from this run's (e.g. another "
                "text vocabulary: the encoder's token embeddings would be read with other ids); use the "
                "same data settings and train split as the pre-training"
            )
