"""Every encoder and fuser against the shared contracts (tests/models/contracts.py).

Cover a new encoder or fuser by adding ONE line to ``ENCODERS`` or ``FUSERS``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mmfuse.models.encoders import (
    AudioCNN,
    AudioTransformer,
    GraphEncoder,
    ImageCNN,
    ImageViT,
    TextRNN,
    TextTransformer,
)
from mmfuse.models.encoders.tabular_mlp import TabularMLP
from mmfuse.models.fusion import (
    BottleneckFusion,
    ConcatFusion,
    CrossModalAttentionFusion,
    EarlyFusion,
    FiLMFusion,
    GatedFusion,
    LateFusion,
    LowRankFusion,
    PerceiverFusion,
)
from tests.models.contracts import (
    ENCODER_CHECKS,
    FUSER_CHECKS,
    D,
    EncoderCase,
    FuserCase,
    graph_inputs,
    image_inputs,
    log_mel_inputs,
    text_inputs,
    vector_inputs,
)

V = 20  # vocabulary of the text cases
PYG = "torch_geometric"  # the graph extra: graph cases are skipped without it

ENCODERS = [
    EncoderCase("image_cnn", lambda: ImageCNN(3, D, channels=[4, 6]), image_inputs(3, 8, 8), padded=False),
    EncoderCase("rnn_gru_bi", lambda: TextRNN(V, d_model=D, embed_dim=6, hidden_size=5), text_inputs(V)),
    EncoderCase("rnn_lstm_2", lambda: TextRNN(V, D, 6, 5, num_layers=2, cell="lstm"), text_inputs(V)),
    EncoderCase("rnn_gru_uni", lambda: TextRNN(V, D, 6, 5, bidirectional=False), text_inputs(V)),
    EncoderCase("text_transformer", lambda: TextTransformer(V, D, 2, 2, 2, max_length=16), text_inputs(V)),
    EncoderCase("audio_cnn", lambda: AudioCNN(5, D, channels=[6, 7], kernel_size=3), log_mel_inputs(5)),
    EncoderCase(
        "image_vit", lambda: ImageViT(3, D, patch_size=4, num_heads=2), image_inputs(3, 8, 12), padded=False
    ),
    EncoderCase("audio_transformer", lambda: AudioTransformer(6, D, 2, 3, num_heads=2), log_mel_inputs(6)),
    EncoderCase("graph_gcn", lambda: GraphEncoder(3, D, hidden=8), graph_inputs(3), False, True, PYG),
    EncoderCase("graph_gat", lambda: GraphEncoder(3, D, "gat", heads=2), graph_inputs(3), False, True, PYG),
    EncoderCase("tabular_mlp", lambda: TabularMLP(4, d_model=D, hidden=6), vector_inputs(4), padded=False),
]

FUSERS = [
    FuserCase("concat", lambda mods: ConcatFusion(mods, d_model=D, hidden=16, dropout=0.0)),
    FuserCase("late", lambda mods: LateFusion(mods, d_model=D)),
    FuserCase("cross", lambda mods: CrossModalAttentionFusion(mods, D, num_heads=2, num_layers=2, dropout=0)),
    FuserCase("gated", lambda mods: GatedFusion(mods, d_model=D, hidden=16, dropout=0.0)),
    FuserCase("early", lambda mods: EarlyFusion(mods, D, num_heads=2, num_layers=2, dropout=0)),
    FuserCase("bottleneck", lambda mods: BottleneckFusion(mods, D, 2, num_heads=2, dropout=0)),
    FuserCase("bottleneck_from_1", lambda mods: BottleneckFusion(mods, D, 2, 3, fusion_layer=1, dropout=0)),
    FuserCase("perceiver", lambda mods: PerceiverFusion(mods, D, num_latents=3, num_heads=2, dropout=0)),
    FuserCase("low_rank", lambda mods: LowRankFusion(mods, d_model=D, rank=3, dropout=0)),
    FuserCase("film", lambda mods: FiLMFusion(mods, d_model=D, conditioning="text", num_blocks=2, dropout=0)),
]


@pytest.mark.parametrize("check", ENCODER_CHECKS, ids=lambda c: c.__name__.removeprefix("encoder_"))
@pytest.mark.parametrize("case", ENCODERS, ids=lambda c: c.id)
def test_encoder_contract(case: EncoderCase, check: Callable[[EncoderCase], None]) -> None:
    check(case)


@pytest.mark.parametrize("check", FUSER_CHECKS, ids=lambda c: c.__name__.removeprefix("fuser_"))
@pytest.mark.parametrize("case", FUSERS, ids=lambda c: c.id)
def test_fuser_contract(case: FuserCase, check: Callable[[FuserCase], None]) -> None:
    check(case)
