"""Optimizer groups: pretrained backbones at their own learning rate, the rest at the optimizer's."""

from __future__ import annotations

from typing import Any

from torch import nn

from mmfuse.models.encoders.hf_common import other_parameters, pretrained_parameters

PRETRAINED_GROUP = "pretrained"
OTHER_GROUP = "other"


def param_groups(module: nn.Module, pretrained_lr: float | None = None) -> list[dict[str, Any]]:
    """Split ``module``'s parameters into the groups an optimizer takes, each parameter exactly once.

    - ``"pretrained"``: every backbone parameter of the Hugging Face encoders inside ``module``
      (:func:`~mmfuse.models.encoders.hf_common.pretrained_parameters`), with ``lr=pretrained_lr``.
    - ``"other"``: everything else (projections, fuser, heads, a contrastive temperature), with no
      ``lr`` of its own: the optimizer's ``lr`` applies.

    Frozen backbones are **included**, in the pretrained group: an optimizer skips a parameter
    whose ``.grad`` is None (no update, no weight decay, no optimizer state), so a frozen backbone
    stays exactly as loaded, and unfreezing it later
    (:class:`~mmfuse.lit.finetuning.UnfreezeEncoders`) needs no change to the optimizer, its
    scheduler or a checkpoint's optimizer state.

    Each group has a ``"name"`` (``LearningRateMonitor`` logs ``lr-<Optimizer>/<name>``). A group
    with no parameter is left out.

    Args:
        module: the model (the LightningModule, or any module holding the encoders).
        pretrained_lr: the backbones' learning rate; None gives them the optimizer's ``lr`` (still a
            group of their own).

    Returns:
        The groups, for ``optimizer_factory(param_groups(self, pretrained_lr))``.
    """
    if pretrained_lr is not None and pretrained_lr < 0:
        raise ValueError(f"param_groups: pretrained_lr must be >= 0, got {pretrained_lr}")
    pretrained = pretrained_parameters(module)
    groups: list[dict[str, Any]] = []
    if pretrained:
        group: dict[str, Any] = {"params": pretrained, "name": PRETRAINED_GROUP}
        if pretrained_lr is not None:
            group["lr"] = pretrained_lr
        groups.append(group)
    rest = other_parameters(module)
    if rest:
        groups.append({"params": rest, "name": OTHER_GROUP})
    return groups
