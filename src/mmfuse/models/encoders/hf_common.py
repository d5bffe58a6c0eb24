"""What the Hugging Face encoders share: loading a backbone, freezing it, gradient checkpointing,
and finding the pretrained parameters (for an optimizer param group with its own learning rate).

``transformers`` is imported inside the functions, so importing mmfuse stays fast without it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from torch import nn

from mmfuse.pretrained import resolve_model_path

if TYPE_CHECKING:
    from transformers import PreTrainedConfig, PreTrainedModel


def load_backbone(path: str, trust_remote_code: bool, config_only: bool) -> PreTrainedModel:
    """``AutoModel.from_pretrained(path)``, or a randomly initialised model of its config.

    An encoder-decoder model (T5, Whisper) gives its encoder only. A pooler with parameters (BERT,
    ViT) is removed: the encoders read the token states, and parameters that never get a gradient
    break DDP (``find_unused_parameters=False``).

    Args:
        path: a hub id, a local folder, or ``pkg:<package>/<folder>`` (a folder shipped inside an
            installed package, see :func:`mmfuse.pretrained.resolve_model_path`).
        trust_remote_code: allow the model's own Python code from the hub (off by default: it runs
            arbitrary code).
        config_only: build from ``AutoConfig.from_pretrained(path)`` with random weights (tests,
            offline experiments, training from scratch with a known architecture).
    """
    from transformers import AutoConfig, AutoModel

    path = resolve_model_path(path)
    if config_only:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModel.from_config(config, trust_remote_code=trust_remote_code)
    else:
        model = AutoModel.from_pretrained(path, trust_remote_code=trust_remote_code)
    if getattr(model.config, "is_encoder_decoder", False):
        model = model.get_encoder()
    pooler = getattr(model, "pooler", None)
    if isinstance(pooler, nn.Module) and any(True for _ in pooler.parameters()):
        model.pooler = None  # the HF models with a learnt pooler all skip it when it is None
    return model


def backbone_width(config: PreTrainedConfig, where: str) -> int:
    """The feature width of a backbone's ``last_hidden_state``: ``hidden_sizes[-1]`` for CNN stages
    (ResNet, ConvNeXt), else ``hidden_size`` (``d_model`` maps to it for T5 and Whisper)."""
    sizes = getattr(config, "hidden_sizes", None)
    if sizes:
        return int(sizes[-1])
    size = getattr(config, "hidden_size", None)
    if size is None:
        raise ValueError(f"{where}: cannot tell the width of {type(config).__name__} (no hidden_size)")
    return int(size)


def preprocessor_dict(path: str, trust_remote_code: bool) -> dict[str, Any]:
    """The backbone's ``preprocessor_config.json`` (image processor or feature extractor) as a dict,
    without building the processor; empty when there is none (e.g. a folder holding only a config)."""
    from transformers.feature_extraction_utils import FeatureExtractionMixin

    try:
        values, _ = FeatureExtractionMixin.get_feature_extractor_dict(
            resolve_model_path(path), trust_remote_code=trust_remote_code
        )
    except OSError:
        return {}
    return dict(values)


class HFEncoderBase(nn.Module):
    """Holds a ``backbone`` loaded with :func:`load_backbone`; freezing and checkpointing live here.

    Frozen: every backbone parameter has ``requires_grad=False`` and the backbone stays in eval mode
    when the encoder is put in train mode, so its dropout and normalisation statistics do not
    change; the encoder's own layers (the projection) train. Gradient checkpointing trades compute
    for memory when the backbone is fine-tuned (it has no effect on a frozen one, which keeps no
    activations for backward); backbones that do not support it give a warning.

    Attributes:
        backbone: the ``transformers`` model; its parameters are what :func:`pretrained_parameters`
            collects.
        freeze: whether the backbone is frozen.
        gradient_checkpointing: whether checkpointing is enabled on the backbone.
        proj: the projection from the backbone's width to ``D`` (set by each encoder).
    """

    proj: nn.Linear

    def __init__(
        self,
        model_name_or_path: str,
        freeze: bool,
        trust_remote_code: bool,
        gradient_checkpointing: bool,
        config_only: bool,
    ) -> None:
        super().__init__()
        self.model_name_or_path = model_name_or_path
        self.trust_remote_code = trust_remote_code
        self.freeze = freeze
        self.backbone = load_backbone(model_name_or_path, trust_remote_code, config_only)
        self.gradient_checkpointing = False
        if gradient_checkpointing:
            if getattr(self.backbone, "supports_gradient_checkpointing", False):
                # non-reentrant: also correct when the checkpointed inputs need no gradient
                no_reentrant = {"use_reentrant": False}
                if hasattr(self.backbone, "activation_checkpointing_enable"):  # transformers >= 5.x's name
                    self.backbone.activation_checkpointing_enable(
                        activation_checkpointing_kwargs=no_reentrant
                    )
                else:
                    self.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs=no_reentrant)
                self.gradient_checkpointing = True
            else:
                warnings.warn(
                    f"{type(self).__name__}: {type(self.backbone).__name__} does not support gradient "
                    "checkpointing; training without it",
                    stacklevel=3,
                )
        self.set_frozen(freeze)

    def set_frozen(self, frozen: bool) -> None:
        """Freeze or unfreeze the backbone now (e.g. from a callback that unfreezes it after a warm-up
        epoch; add its parameters to the optimizer then, or create them in it from the start)."""
        self.freeze = frozen
        self.backbone.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> HFEncoderBase:
        """Set train/eval mode; a frozen backbone always stays in eval mode."""
        super().train(mode)
        if self.freeze:
            self.backbone.eval()
        return self


def pretrained_parameters(module: nn.Module) -> list[nn.Parameter]:
    """Every backbone parameter of the Hugging Face encoders anywhere inside ``module``.

    For an optimizer param group with a smaller learning rate than the newly initialised layers::

        pretrained = pretrained_parameters(model)
        seen = {id(p) for p in pretrained}
        rest = [p for p in model.parameters() if id(p) not in seen]
        optim = torch.optim.AdamW([{"params": pretrained, "lr": 1e-5}, {"params": rest, "lr": 1e-3}])

    Frozen backbones' parameters are included (``requires_grad=False``; optimizers skip them).
    """
    return _unique(
        p for m in module.modules() if isinstance(m, HFEncoderBase) for p in m.backbone.parameters()
    )


def other_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``module`` that :func:`pretrained_parameters` does not return."""
    seen = {id(p) for p in pretrained_parameters(module)}
    return [p for p in module.parameters() if id(p) not in seen]


def _unique(params: Iterable[nn.Parameter]) -> list[nn.Parameter]:
    seen: set[int] = set()
    out = []
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out
