"""Cross-modal contrastive learning: CLIP's symmetric InfoNCE between pooled modality embeddings."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn


class ContrastiveOutput(NamedTuple):
    """What :class:`ContrastiveLoss` returns.

    Attributes:
        loss: scalar, the mean of the pairs' losses over the pairs with at least 2 valid samples
            (zero, still connected to every input and the temperature, when there is none).
        per_pair: ``"a-b"`` -> scalar loss of that pair (zero where it has fewer than 2 valid samples).
    """

    loss: Tensor
    per_pair: dict[str, Tensor]


class ContrastiveLoss(nn.Module):
    """Symmetric InfoNCE (CLIP, Radford et al. 2021) between modalities' pooled embeddings.

    For each pair ``(a, b)``, over the samples where both are present: L2-normalise, ``logits =
    s * a @ b.T`` with ``s = 1 / temperature``, and average the cross-entropy of matching each
    ``a`` to its ``b`` among all of them and each ``b`` to its ``a``. A sample missing either
    modality is neither an anchor nor a negative for that pair. The loss is computed in float32 (or
    float64 for float64 inputs).

    The temperature is learnt as ``log s`` (CLIP's ``logit_scale``, initialised to
    ``log(1 / temperature)``), with ``s`` clamped to ``max_logit_scale``.

    Under DDP (``torch.distributed`` initialised, world size > 1, ``gather=True``) the embeddings
    of every rank are all-gathered with gradient, so negatives come from the global batch (local
    batch sizes may differ). Every rank then computes the same global loss ``L``, and the backward
    of the gather sums the ranks' gradients for the local embeddings, giving ``W * dL/dx`` on each
    of the ``W`` ranks; DDP's average over ranks makes that ``dL/dθ``. So the loss needs no
    rescaling: parameter gradients equal those of one process on the concatenated batch (tested).
    Every rank must pass the same modalities.

    Args:
        pairs: the modality pairs to contrast, e.g. ``[["image", "text"]]``; None: every pair of
            the modalities passed to :meth:`forward`, in sorted order.
        temperature: initial (or fixed) softmax temperature.
        learnable_temperature: learn the temperature; else it stays fixed.
        max_logit_scale: upper bound of ``1 / temperature`` (CLIP: 100).
        gather: under DDP, take negatives from every rank.
    """

    logit_scale: Tensor

    def __init__(
        self,
        pairs: Sequence[Sequence[str]] | None = None,
        temperature: float = 0.07,
        learnable_temperature: bool = True,
        max_logit_scale: float = 100.0,
        gather: bool = True,
    ) -> None:
        super().__init__()
        if temperature <= 0 or max_logit_scale <= 0:
            raise ValueError(
                f"ContrastiveLoss: temperature and max_logit_scale must be positive, "
                f"got {temperature} and {max_logit_scale}"
            )
        self.pairs: list[tuple[str, str]] | None = None
        if pairs is not None:
            if any(len(p) != 2 or p[0] == p[1] for p in pairs):
                raise ValueError(f"ContrastiveLoss: pairs must be two different modalities each, got {pairs}")
            self.pairs = [(str(p[0]), str(p[1])) for p in pairs]
        self.max_logit_scale = max_logit_scale
        self.gather = gather
        init = torch.tensor(math.log(1.0 / temperature))
        if learnable_temperature:
            self.logit_scale = nn.Parameter(init)
        else:
            self.register_buffer("logit_scale", init)

    def scale(self) -> Tensor:
        """``1 / temperature``, clamped to ``max_logit_scale``."""
        return self.logit_scale.exp().clamp(max=self.max_logit_scale)

    @property
    def temperature(self) -> float:
        """The current temperature."""
        return float(1.0 / self.scale().detach())

    def forward(self, embeddings: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> ContrastiveOutput:
        """Args:
            embeddings: modality -> ``(B, D)`` pooled embedding (one common width ``D``).
            present: modality -> ``(B,)`` bool, False where the sample lacks that modality.

        Returns:
            ContrastiveOutput (total and per-pair losses).
        """
        pairs = self.pairs if self.pairs is not None else list(itertools.combinations(sorted(embeddings), 2))
        names = sorted({m for pair in pairs for m in pair})
        for m in names:
            if m not in embeddings or m not in present:
                raise ValueError(
                    f"ContrastiveLoss: pairs {pairs} need modality {m!r}; got embeddings for "
                    f"{sorted(embeddings)} and presence for {sorted(present)}"
                )
        # at least float32: half-precision logits at scale 100 would round the softmax
        emb = {m: F.normalize(_at_least_fp32(embeddings[m]), dim=-1) for m in names}  # (B, D) each
        have = {m: present[m].bool() for m in names}
        if self.gather and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            emb, have = _gather_global(emb, have)  # (B_global, D), (B_global,)
        scale = self.scale()
        # zero that keeps every input and the temperature in the graph (DDP wants every parameter used)
        # (masked_fill: a missing sample's placeholder embedding may hold anything, even NaN)
        zero = 0.0 * scale
        for m in names:
            zero = zero + 0.0 * emb[m].masked_fill(~have[m][:, None], 0.0).sum()
        per_pair: dict[str, Tensor] = {}
        counted = []
        for a, b in pairs:
            valid = have[a] & have[b]  # (B,)
            n = int(valid.sum())
            if n < 2:  # one sample has no negative
                per_pair[f"{a}-{b}"] = zero
                continue
            logits = scale * emb[a][valid] @ emb[b][valid].T  # (n, n)
            target = torch.arange(n, device=logits.device)
            loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
            per_pair[f"{a}-{b}"] = loss
            counted.append(loss)
        total = torch.stack(counted).mean() + zero if counted else zero
        return ContrastiveOutput(loss=total, per_pair=per_pair)


def _gather_global(
    emb: dict[str, Tensor], have: dict[str, Tensor]
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """All-gather every rank's rows, with gradient for the embeddings; ranks' batches may differ in size
    (rows are padded to the largest and the padding marked absent)."""
    from torch.distributed.nn.functional import all_gather

    world = dist.get_world_size()
    first = next(iter(have.values()))
    B = first.shape[0]
    sizes = [torch.zeros(1, dtype=torch.long, device=first.device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([B], device=first.device))
    pad = int(max(int(s) for s in sizes)) - B
    out_emb, out_have = {}, {}
    for m in sorted(emb):
        e = F.pad(emb[m], (0, 0, 0, pad))  # (B_max, D)
        out_emb[m] = torch.cat(all_gather(e), dim=0)  # (W * B_max, D)
        h = F.pad(have[m], (0, pad), value=False).to(torch.uint8)  # collectives lack bool on some backends
        parts = [torch.empty_like(h) for _ in range(world)]
        dist.all_gather(parts, h)
        out_have[m] = torch.cat(parts).bool()
    return out_emb, out_have


def _at_least_fp32(x: Tensor) -> Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32))
