"""The fusers' attention weights as labelled figures, one per (query, key modality) pair and sample.

Two layouts of ``FusionOutput.attention`` are drawn (every shipped fuser that returns weights uses
one of them):

- ``"m->others"`` ``(B, H, T_m, sum of T_other)``: modality ``m``'s tokens attending to the other
  modalities' tokens, in sorted order (cross-modal attention, early and bottleneck fusion). Rows are
  ``m``'s real tokens.
- ``"q->tokens"`` ``(B, H, N, sum of T_m)``: ``N`` learnt query tokens that are no modality (the
  Perceiver's latents) attending to every modality's tokens, in sorted order. All ``N`` rows are
  drawn, labelled by position.

Columns are the key modality's real tokens; padding and absent modalities are left out. A key in
neither layout, or whose width does not add up to the modalities' token counts, is not drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from mmfuse.lit.wandb.figures import attention_figure, safe_name
from mmfuse.lit.wandb.val_samples import FixedSamples

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class AttentionPanel:
    """One sample's map of one query attending to one key modality.

    Attributes:
        key: the W&B key, ``attention/<query>_to_<key modality>``.
        figure: the labelled heatmap (real query tokens as rows, real key tokens as columns).
        caption: what the figure shows, with the largest weight.
    """

    key: str
    figure: Figure
    caption: str


def attention_panels(
    attention: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    samples: FixedSamples,
    count: int,
    describe: Callable[[int], str],
) -> list[AttentionPanel]:
    """Figures of the first ``count`` samples' attention, averaged over heads.

    Args:
        attention: the fuser's weights, ``"m->others"`` or ``"q->tokens"`` -> ``(B, H, T_q, S)``.
        masks: modality -> ``(B, T_m)`` bool, True where the token is real and its modality present.
        samples: the samples the weights are of (their ids and text tokens label the figures).
        count: at most this many samples per map.
        describe: sample index -> how a title names it (its id and label).

    Returns:
        The panels, by attention key, then key modality, then sample.
    """
    panels = []
    modalities = sorted(masks)  # the fusers' order: keys concatenated in sorted modality order
    for name, weights in attention.items():
        query, _, kind = name.partition("->")
        if kind == "others" and query in masks:
            keys = [m for m in modalities if m != query]
            rows = masks[query]
        elif kind == "tokens":  # learnt queries, no modality: every row is real
            keys = modalities
            rows = torch.ones(weights.shape[:1] + weights.shape[2:3], dtype=torch.bool)
        else:
            continue
        sizes = [masks[k].shape[1] for k in keys]
        if not keys or sum(sizes) != weights.shape[-1]:
            continue  # not a layout this module knows how to split
        heads = weights.shape[1]
        mean = weights.float().mean(dim=1)  # (B, T_q, S)
        for key, part in zip(keys, mean.split(sizes, dim=-1), strict=True):  # (B, T_q, T_k)
            for b in range(min(count, part.shape[0])):
                real_rows, real_cols = rows[b], masks[key][b]
                if not real_rows.any() or not real_cols.any():
                    continue  # one of the two is missing for this sample
                matrix = part[b][real_rows][:, real_cols]  # (R, C)
                what = f"{query} tokens (rows) attending to {key} tokens (columns), mean of {heads} heads"
                figure = attention_figure(
                    matrix,
                    _token_labels(samples, query, b, real_rows),
                    _token_labels(samples, key, b, real_cols),
                    _axis_title(samples, query, "queries", modality=kind == "others"),
                    _axis_title(samples, key, "keys"),
                    f"{describe(b)}: {query} attending to {key}, mean of {heads} heads",
                )
                caption = f"{describe(b)}: {what}, max {float(matrix.max()):.3f}"
                panels.append(
                    AttentionPanel(f"attention/{safe_name(query)}_to_{safe_name(key)}", figure, caption)
                )
    return panels


def _token_labels(samples: FixedSamples, modality: str, b: int, real: Tensor) -> list[str]:
    """Labels of sample ``b``'s real tokens of ``modality``: the text tokens where the modality is
    text (and the encoder kept one token per text token), else the tokens' positions."""
    positions = real.nonzero().flatten().tolist()
    words = samples.tokens.get(modality, [])
    if b < len(words) and len(words[b]) == len(positions):
        return list(words[b])
    return [str(i) for i in positions]


def _axis_title(samples: FixedSamples, name: str, role: str, modality: bool = True) -> str:
    if not modality:
        return f"{name} ({role})"  # learnt query tokens: their positions
    what = "tokens" if name in samples.tokens else "token positions"
    return f"{name} {what} ({role})"
