"""Cross-modal retrieval recall@k, in both directions of a modality pair.

:class:`CrossModalRecall` is a ``torchmetrics.Metric``: it gathers the pair's embeddings over an
epoch (and over DDP ranks) and ranks every query against the whole gallery at :meth:`compute`.
The recall itself is computed from the rank of each query's true match, vectorised: torchmetrics'
``RetrievalRecall`` loops over queries in Python on an ``N x N`` score table, and counts a match as
missed whenever its score is not positive, which cosine similarities can be.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


def match_ranks(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """The 1-based rank of each query's true match by cosine similarity; ``a[i]`` matches ``b[i]``.

    A query's rank is 1 + the number of gallery items that score strictly higher than its match
    (ties count in the query's favour).

    Args:
        a: ``(N, D)`` embeddings of the first modality.
        b: ``(N, D)`` embeddings of the second modality.

    Returns:
        ``(N,)`` long ranks of ``a -> b`` (each row of ``a`` queries all rows of ``b``) and of ``b -> a``.
    """
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"retrieval: a and b must both be (N, D), got {tuple(a.shape)} and {tuple(b.shape)}")
    sim = F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T  # (N, N) query a, gallery b
    ranks = []
    for scores in (sim, sim.T):
        true = scores.diagonal()[:, None]  # (N, 1)
        ranks.append((scores > true).sum(dim=1) + 1)  # (N,)
    return ranks[0], ranks[1]


def retrieval_recall(
    a: Tensor, b: Tensor, ks: Sequence[int] = (1, 5, 10), names: tuple[str, str] = ("a", "b")
) -> dict[str, Tensor]:
    """Recall@k of cross-modal retrieval by cosine similarity; row ``i`` of ``a`` matches row ``i`` of ``b``.

    ``a -> b``: each row of ``a`` queries all rows of ``b``; it is a hit at ``k`` when fewer than
    ``k`` rows of ``b`` score strictly higher than its match (ties count in the query's favour).
    ``b -> a`` likewise. With ``k >= N`` every query is a hit.

    Args:
        a: ``(N, D)`` embeddings of the first modality.
        b: ``(N, D)`` embeddings of the second modality.
        ks: the cut-offs ``k``.
        names: the modalities' names, used in the keys.

    Returns:
        ``"<a>_to_<b>/recall@<k>"`` and ``"<b>_to_<a>/recall@<k>"`` -> scalar in ``[0, 1]``
        (NaN when ``N == 0``).
    """
    out: dict[str, Tensor] = {}
    for (q, g), rank in zip((names, names[::-1]), match_ranks(a, b), strict=True):
        for k in ks:
            out[f"{q}_to_{g}/recall@{k}"] = (rank <= k).float().mean()
    return out


def retrieval_report(
    a: Tensor, b: Tensor, ks: Sequence[int] = (1, 5, 10), names: tuple[str, str] = ("a", "b")
) -> dict[str, float]:
    """:func:`retrieval_recall` and the median rank of the true match (1 = always first), both ways.

    Returns:
        ``"<a>_to_<b>/recall@<k>"``, ``"<a>_to_<b>/median_rank"`` and the same from ``b`` -> float;
        the median of an even count is the mean of the middle two (NaN when ``N == 0``).
    """
    out = {key: float(v) for key, v in retrieval_recall(a, b, ks, names).items()}
    for (q, g), rank in zip((names, names[::-1]), match_ranks(a, b), strict=True):
        out[f"{q}_to_{g}/median_rank"] = float(rank.float().quantile(0.5)) if len(rank) else float("nan")
    return out


class CrossModalRecall(Metric):
    """Recall@k in both directions of one modality pair, over a whole epoch (synced across ranks).

    Call :meth:`update` with each batch's pooled embeddings; only samples with both modalities
    (``valid``) enter the gallery. :meth:`compute` gives :func:`retrieval_recall` of everything
    seen, e.g. ``{"image_to_text/recall@1": ..., ...}``. Memory: the embeddings (``N x D``) and, at
    compute, one ``N x N`` similarity table.

    Args:
        names: the pair, e.g. ``("image", "text")``.
        ks: the cut-offs ``k``.
    """

    full_state_update = False
    higher_is_better = True
    a: list[Tensor]
    b: list[Tensor]

    def __init__(self, names: tuple[str, str] = ("a", "b"), ks: Sequence[int] = (1, 5, 10)) -> None:
        super().__init__()
        self.names = (str(names[0]), str(names[1]))
        self.ks = tuple(int(k) for k in ks)
        self.add_state("a", default=[], dist_reduce_fx="cat")
        self.add_state("b", default=[], dist_reduce_fx="cat")

    def update(self, a: Tensor, b: Tensor, valid: Tensor | None = None) -> None:
        """Args:
        a: ``(B, D)`` embeddings of the first modality.
        b: ``(B, D)`` embeddings of the second.
        valid: ``(B,)`` bool, True where the sample has both (default: all).
        """
        if valid is not None:
            a, b = a[valid.bool()], b[valid.bool()]
        self.a.append(a.detach().float())
        self.b.append(b.detach().float())

    def compute(self) -> dict[str, Tensor]:
        if isinstance(self.a, list) and not self.a:  # nothing seen (after a sync the state is a tensor)
            empty = torch.zeros(0, 1, device=self.device)
            return retrieval_recall(empty, empty, self.ks, self.names)
        a, b = dim_zero_cat(self.a), dim_zero_cat(self.b)
        return retrieval_recall(a, b, self.ks, self.names)
