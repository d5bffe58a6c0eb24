"""ContrastiveObjective: the cross-modal contrastive loss and its retrieval metrics, for the module."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import cast

from torch import Tensor, nn

from mmfuse.models.losses import ContrastiveLoss, ContrastiveOutput
from mmfuse.models.retrieval import CrossModalRecall

STAGES = ("val", "test")


class ContrastiveObjective(nn.Module):
    """CLIP-style contrastive learning between the modalities' pooled embeddings, plus recall@k.

    Holds a :class:`~mmfuse.models.losses.ContrastiveLoss` (symmetric InfoNCE, learnt temperature,
    negatives from every DDP rank) and, per evaluation stage, one
    :class:`~mmfuse.models.retrieval.CrossModalRecall` per modality pair. A sample missing a modality
    is left out of every pair with that modality: neither an anchor nor a negative in the loss, nor
    in the retrieval gallery.

    How the module uses it (``embeddings``: modality -> ``(B, D)``, the masked mean of each
    encoder's tokens; ``present``: modality -> ``(B,)`` bool)::

        objective.bind(modalities)                                    # in __init__
        out = objective.loss(embeddings, present)                     # training_step
        loss = task_loss + objective.weight * out.loss                # or out.loss alone: pre-training
        objective.update("val", embeddings, present)                  # validation_step
        self.log_dict(objective.compute("val")); objective.reset("val")   # on_validation_epoch_end

    Args:
        weight: the contrastive loss's weight beside the task losses (the module multiplies).
        pairs: the modality pairs, e.g. ``[["image", "text"]]``; None: every pair of the model's
            modalities (given by :meth:`bind`).
        temperature: initial softmax temperature.
        learnable_temperature: learn it (CLIP's ``logit_scale``); else fixed.
        ks: the recall cut-offs ``k``.
        gather: under DDP, negatives from every rank's batch.
    """

    def __init__(
        self,
        weight: float = 1.0,
        pairs: list[list[str]] | None = None,
        temperature: float = 0.07,
        learnable_temperature: bool = True,
        ks: Sequence[int] = (1, 5, 10),
        gather: bool = True,
    ) -> None:
        super().__init__()
        if weight < 0:
            raise ValueError(f"ContrastiveObjective: weight must be >= 0, got {weight}")
        if not ks or any(k < 1 for k in ks):
            raise ValueError(f"ContrastiveObjective: ks must be positive cut-offs, got {list(ks)}")
        self.weight = weight
        self.ks = tuple(int(k) for k in ks)
        self.criterion = ContrastiveLoss(
            pairs=pairs, temperature=temperature, learnable_temperature=learnable_temperature, gather=gather
        )
        self.pairs: list[tuple[str, str]] = []
        # ModuleDict keys: "<stage>_" (a key may not shadow an nn.Module attribute), then "<a>-<b>"
        self.recall = nn.ModuleDict()

    def bind(self, modalities: Sequence[str]) -> None:
        """Fix the pairs for the model's modalities and create their recall metrics (call once, in the
        module's ``__init__``, so that they move to the device and sync under DDP).

        Raises:
            ValueError: a configured pair names a modality the model does not have, or there are
                fewer than two modalities.
        """
        names = sorted(modalities)
        configured = self.criterion.pairs
        pairs = configured if configured is not None else list(itertools.combinations(names, 2))
        unknown = sorted({m for pair in pairs for m in pair} - set(names))
        if unknown or not pairs:
            raise ValueError(
                f"ContrastiveObjective: pairs {pairs} need modalities {unknown or 'two or more'}, "
                f"but the model has encoders {names}"
            )
        self.pairs = [(a, b) for a, b in pairs]
        self.criterion.pairs = self.pairs
        self.recall = nn.ModuleDict(
            {
                f"{stage}_": nn.ModuleDict(
                    {f"{a}-{b}": CrossModalRecall((a, b), self.ks) for a, b in self.pairs}
                )
                for stage in STAGES
            }
        )

    @property
    def temperature(self) -> float:
        """The current softmax temperature (log it as ``train/temperature``)."""
        return self.criterion.temperature

    def loss(self, embeddings: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> ContrastiveOutput:
        """The unweighted contrastive loss: its mean over the pairs, and each pair's (``"a-b"``).

        Args:
            embeddings: modality -> ``(B, D)`` pooled embedding.
            present: modality -> ``(B,)`` bool.
        """
        self._check_bound()
        return cast(ContrastiveOutput, self.criterion(embeddings, present))

    def update(self, stage: str, embeddings: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> None:
        """Add a batch to ``stage``'s retrieval galleries: per pair, the samples that have both."""
        for (a, b), metric in zip(self.pairs, self._stage(stage).values(), strict=True):
            valid = present[a].bool() & present[b].bool()  # (B,)
            cast(CrossModalRecall, metric).update(embeddings[a], embeddings[b], valid)

    def compute(self, stage: str) -> dict[str, Tensor]:
        """``"<stage>/retrieval/<a>_to_<b>/recall@<k>"`` (both directions, every pair and ``k``) over
        everything :meth:`update` saw in ``stage`` (on every rank); NaN for a pair with no sample."""
        out: dict[str, Tensor] = {}
        for metric in self._stage(stage).values():
            for key, value in cast(CrossModalRecall, metric).compute().items():
                out[f"{stage}/retrieval/{key}"] = value
        return out

    def reset(self, stage: str) -> None:
        """Empty ``stage``'s galleries (after logging :meth:`compute`, at each epoch's end)."""
        for metric in self._stage(stage).values():
            cast(CrossModalRecall, metric).reset()

    def _stage(self, stage: str) -> nn.ModuleDict:
        self._check_bound()
        if f"{stage}_" not in self.recall:
            raise ValueError(f"ContrastiveObjective: recall is kept for stages {list(STAGES)}, not {stage!r}")
        return cast(nn.ModuleDict, self.recall[f"{stage}_"])

    def _check_bound(self) -> None:
        if not self.pairs:
            raise RuntimeError(
                "ContrastiveObjective: call bind(modalities) first (the module does, in __init__)"
            )
