"""UnfreezeEncoders: train with frozen pretrained backbones first, then fine-tune them (also under DDP)."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.strategies import DDPStrategy, SingleDeviceStrategy
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim import Optimizer

from mmfuse.models.encoders.hf_common import HFEncoderBase


class UnfreezeEncoders(Callback):
    """Unfreezes the frozen Hugging Face encoders (``freeze: true``) when epoch ``unfreeze_at_epoch`` starts.

    The first epochs train the new layers (projections, fuser, heads) on the pretrained features;
    then the backbones are fine-tuned, optionally with their learning rate ramped up linearly over
    ``warmup_steps`` optimizer steps, so that the first large gradients of still-untrained heads do
    not wreck the pretrained weights.

    The backbones' parameters must already be in the optimizer: build it with
    :func:`mmfuse.lit.optim.param_groups`, which puts frozen backbones in the ``"pretrained"`` group
    (at ``pretrained_lr``) from the start; the optimizer skips them while they have no gradient.
    Unlike Lightning's ``BackboneFinetuning`` nothing is added to the optimizer mid-run, so a
    checkpoint's optimizer state has the same groups before and after, and resuming past the
    unfreezing epoch unfreezes again at the first resumed epoch.

    DDP: ``DistributedDataParallel`` only synchronises the parameters that required a gradient when
    it wrapped the model. Lightning's ``BackboneFinetuning`` does nothing about that (the backbone
    then trains on each rank's own gradients, and the ranks' weights drift apart: Lightning issue
    #20340). Here, after unfreezing, the model is wrapped anew (``DDPStrategy._setup_model``, with the
    strategy's own DDP arguments) on every rank at the same point, so the unfrozen backbones'
    gradients are averaged like every other parameter's; the new wrapper broadcasts rank 0's weights
    (equal already). Other multi-device strategies (FSDP, DeepSpeed) are refused at setup.

    Args:
        unfreeze_at_epoch: the epoch (0-based) whose start unfreezes the backbones; 0 unfreezes them
            before the first step.
        modalities: the encoders (by modality name, the keys of ``model.encoders``) to unfreeze; None:
            every frozen Hugging Face encoder.
        warmup_steps: optimizer steps over which the unfrozen backbones' learning rate rises linearly
            from ``1 / warmup_steps`` of its value to all of it (0: no warm-up). The scaling is applied
            around each ``optimizer.step`` only, so learning-rate schedulers see the unscaled value.
    """

    def __init__(
        self, unfreeze_at_epoch: int = 1, modalities: list[str] | None = None, warmup_steps: int = 0
    ):
        super().__init__()
        if unfreeze_at_epoch < 0 or warmup_steps < 0:
            raise ValueError(
                f"UnfreezeEncoders: unfreeze_at_epoch and warmup_steps must be >= 0, "
                f"got {unfreeze_at_epoch} and {warmup_steps}"
            )
        self.unfreeze_at_epoch = unfreeze_at_epoch
        self.modalities = None if modalities is None else list(modalities)
        self.warmup_steps = warmup_steps
        self.unfrozen = False
        self.warmup_done = 0  # optimizer steps taken since unfreezing (saved with the checkpoint)
        self._encoders: dict[str, HFEncoderBase] = {}
        self._hooks: list[Any] = []

    # --- setup --------------------------------------------------------------------------------

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self._encoders = _frozen_encoders(pl_module, self.modalities)
        strategy = trainer.strategy
        if self._encoders and not isinstance(strategy, DDPStrategy | SingleDeviceStrategy):
            raise ValueError(
                f"UnfreezeEncoders: strategy {type(strategy).__name__} is not supported (single device "
                "or DDP only): unfreezing changes which parameters the strategy must synchronise"
            )

    # --- unfreezing ---------------------------------------------------------------------------

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch < self.unfreeze_at_epoch or not self._encoders:
            return
        if any(enc.freeze for enc in self._encoders.values()):
            self._unfreeze(trainer)
        if not self._hooks and self.warmup_done < self.warmup_steps:
            self._start_warmup(trainer)

    def _unfreeze(self, trainer: pl.Trainer) -> None:
        missing = _not_in_optimizers(self._encoders, trainer.optimizers)
        if missing:
            raise ValueError(
                f"UnfreezeEncoders: the backbones of {sorted(missing)} are not in the optimizer: build it "
                "with mmfuse.lit.optim.param_groups (frozen backbones are in its 'pretrained' group)"
            )
        for encoder in self._encoders.values():
            encoder.set_frozen(False)
        self.unfrozen = True
        strategy = trainer.strategy
        if isinstance(strategy, DDPStrategy) and isinstance(strategy.model, DistributedDataParallel):
            # a new wrapper registers the unfrozen parameters for gradient averaging (every rank
            # reaches this line at the same epoch start: the constructor is a collective)
            inner = strategy.model.module
            strategy.model = None  # drop the old wrapper (and its reducer's autograd hooks) first
            strategy.model = strategy._setup_model(inner)
            strategy._register_ddp_hooks()

    # --- warm-up ------------------------------------------------------------------------------

    def _start_warmup(self, trainer: pl.Trainer) -> None:
        backbone = {id(p) for enc in self._encoders.values() for p in enc.backbone.parameters()}
        for optimizer in trainer.optimizers:
            groups = [g for g in optimizer.param_groups if any(id(p) in backbone for p in g["params"])]
            if groups:
                self._hooks.append(optimizer.register_step_pre_hook(self._pre_step(groups)))
                self._hooks.append(optimizer.register_step_post_hook(self._post_step(groups)))

    def _pre_step(self, groups: list[dict[str, Any]]) -> Any:
        def hook(optimizer: Optimizer, args: Any, kwargs: Any) -> None:
            if self.warmup_done >= self.warmup_steps:
                return
            factor = (self.warmup_done + 1) / self.warmup_steps
            for group in groups:
                group["mmfuse_unscaled_lr"] = group["lr"]
                group["lr"] = group["lr"] * factor

        return hook

    def _post_step(self, groups: list[dict[str, Any]]) -> Any:
        def hook(optimizer: Optimizer, args: Any, kwargs: Any) -> None:
            if "mmfuse_unscaled_lr" not in groups[0]:
                return
            for group in groups:
                group["lr"] = group.pop("mmfuse_unscaled_lr")
            self.warmup_done += 1

        return hook

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._hooks and self.warmup_done >= self.warmup_steps:
            self._remove_hooks()  # not from inside a hook: the optimizer is iterating over them then

    def _remove_hooks(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._remove_hooks()

    # --- checkpoint ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"unfrozen": self.unfrozen, "warmup_done": self.warmup_done}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.unfrozen = bool(state_dict.get("unfrozen", False))
        self.warmup_done = int(state_dict.get("warmup_done", 0))


def _frozen_encoders(module: nn.Module, modalities: list[str] | None) -> dict[str, HFEncoderBase]:
    """The frozen Hugging Face encoders in ``module``, by modality (the last part of their module path)."""
    found = {
        name.rsplit(".", 1)[-1]: m
        for name, m in module.named_modules()
        if isinstance(m, HFEncoderBase) and m.freeze
    }
    if modalities is None:
        return found
    unknown = sorted(set(modalities) - set(found))
    if unknown:
        raise ValueError(
            f"UnfreezeEncoders: modalities {unknown} have no frozen Hugging Face encoder "
            f"(frozen ones: {sorted(found)}); set freeze: true on them or leave modalities unset"
        )
    return {m: found[m] for m in modalities}


def _not_in_optimizers(encoders: dict[str, HFEncoderBase], optimizers: list[Optimizer]) -> set[str]:
    """The modalities whose backbone has a parameter that no optimizer holds."""
    held = {id(p) for opt in optimizers for g in opt.param_groups for p in g["params"]}
    return {m for m, enc in encoders.items() if any(id(p) not in held for p in enc.backbone.parameters())}
