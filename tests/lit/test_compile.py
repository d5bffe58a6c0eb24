"""`compile: true` compiles encoders and fuser in place: same outputs, same checkpoint keys."""

from __future__ import annotations

import pytest
import torch

from mmfuse.data.manifest.tasks import TaskSpec
from mmfuse.lit.module import MultimodalModule
from mmfuse.models.encoders import AudioCNN, TextTransformer
from mmfuse.models.fusion import CrossModalAttentionFusion
from mmfuse.types import Batch


def _module(compile: bool) -> MultimodalModule:
    torch.manual_seed(0)
    encoders = {
        "audio": AudioCNN(n_mels=8, d_model=16, channels=[16]),
        "text": TextTransformer(vocab_size=20, d_model=16, num_layers=1, num_heads=2),
    }
    fusion = CrossModalAttentionFusion(["audio", "text"], d_model=16, num_heads=2)
    tasks = [TaskSpec(name="label", kind="multiclass", names=["a", "b", "c"])]
    return MultimodalModule(encoders, fusion, tasks=tasks, compile=compile).eval()  # type: ignore[arg-type]


@pytest.mark.slow  # kernels are compiled with the machine's C++ compiler: ~30 s on 2 cores
def test_compiled_matches_eager() -> None:
    g = torch.Generator().manual_seed(1)
    audio_mask = torch.ones(4, 10, dtype=torch.bool)
    audio_mask[1, 6:] = False
    batch = Batch(
        inputs={
            "audio": {"input_features": torch.randn(4, 10, 8, generator=g), "feature_mask": audio_mask},
            "text": {
                "input_ids": torch.randint(2, 20, (4, 7), generator=g),
                "attention_mask": torch.ones(4, 7, dtype=torch.bool),
            },
        },
        present={"audio": torch.tensor([True, True, False, True]), "text": torch.ones(4, dtype=torch.bool)},
        ids=list("abcd"),
    )
    eager, compiled = _module(False), _module(True)
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    assert all(getattr(p, "_compiled_call_impl", None) is not None for p in compiled.model.encoders.values())
    with torch.no_grad():
        expected, got = eager(batch).logits["label"], compiled(batch).logits["label"]
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
