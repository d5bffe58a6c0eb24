"""ContrastiveObjective: the loss the module adds, and retrieval recall@k per pair on a constructed batch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmfuse.lit.contrastive import ContrastiveObjective
from mmfuse.models.losses import ContrastiveLoss

MODALITIES = ["audio", "image", "text"]


def _batch() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """6 samples. text = image exactly; audio of samples 0 and 1 is closer to the other one's image
    (its true match ranks second); text is missing for sample 5."""
    eye = torch.eye(6)
    audio = eye.clone()
    audio[0], audio[1] = eye[1] + 0.5 * eye[0], eye[0] + 0.5 * eye[1]
    embeddings = {"image": eye, "text": eye.clone(), "audio": audio}
    present = {m: torch.ones(6, dtype=torch.bool) for m in MODALITIES}
    present["text"][5] = False
    return embeddings, present


def _update_in_two_batches(objective: ContrastiveObjective, present: dict[str, torch.Tensor]) -> None:
    embeddings, _ = _batch()
    for part in (slice(0, 4), slice(4, 6)):
        objective.update(
            "val", {m: e[part] for m, e in embeddings.items()}, {m: p[part] for m, p in present.items()}
        )


def test_recall_keys_and_values_on_a_constructed_batch() -> None:
    objective = ContrastiveObjective(weight=0.5)
    objective.bind(MODALITIES)
    assert objective.pairs == [("audio", "image"), ("audio", "text"), ("image", "text")]
    _, present = _batch()
    _update_in_two_batches(objective, present)
    values = {k: float(v) for k, v in objective.compute("val").items()}
    assert sorted(values) == sorted(
        f"val/retrieval/{q}_to_{g}/recall@{k}"
        for a, b in objective.pairs
        for q, g in ((a, b), (b, a))
        for k in (1, 5, 10)
    )
    # image <-> text: identical embeddings, every query finds its match first
    assert (
        values["val/retrieval/image_to_text/recall@1"]
        == values["val/retrieval/text_to_image/recall@1"]
        == 1.0
    )
    # audio <-> image: samples 0 and 1 rank their match second, in both directions
    assert values["val/retrieval/audio_to_image/recall@1"] == pytest.approx(4 / 6)
    assert values["val/retrieval/image_to_audio/recall@1"] == pytest.approx(4 / 6)
    assert values["val/retrieval/audio_to_image/recall@5"] == 1.0
    # audio <-> text: sample 5 has no text, so the gallery is samples 0-4
    assert values["val/retrieval/audio_to_text/recall@1"] == pytest.approx(3 / 5)
    objective.reset("val")
    assert not objective._stage("val")["audio-image"].a  # type: ignore[union-attr]


def test_a_missing_modality_leaves_the_pairs_it_is_missing_from() -> None:
    objective = ContrastiveObjective(pairs=[["audio", "image"]])
    objective.bind(MODALITIES)
    _, present = _batch()
    present["audio"][0] = False  # sample 0's audio gone: sample 1's audio now only faces images 1-5
    _update_in_two_batches(objective, present)
    values = objective.compute("val")
    assert sorted(values) == sorted(
        f"val/retrieval/{d}/recall@{k}" for d in ("audio_to_image", "image_to_audio") for k in (1, 5, 10)
    )
    assert float(values["val/retrieval/audio_to_image/recall@1"]) == 1.0
    assert float(values["val/retrieval/image_to_audio/recall@1"]) == 1.0


def test_loss_is_the_contrastive_loss_over_the_bound_pairs() -> None:
    embeddings, present = _batch()
    objective = ContrastiveObjective(weight=0.3, temperature=0.2)
    objective.bind(MODALITIES)
    out = objective.loss(embeddings, present)
    expected = ContrastiveLoss(temperature=0.2)(embeddings, present)
    torch.testing.assert_close(out.loss, expected.loss)
    assert sorted(out.per_pair) == ["audio-image", "audio-text", "image-text"]
    assert objective.weight == 0.3 and objective.temperature == pytest.approx(0.2)
    (objective.weight * out.loss).backward()
    assert objective.criterion.logit_scale.grad is not None  # the temperature is learnt


def test_bind_errors() -> None:
    with pytest.raises(RuntimeError, match="call bind"):
        ContrastiveObjective().loss(*_batch())
    with pytest.raises(ValueError, match=r"need modalities \['graph'\]"):
        ContrastiveObjective(pairs=[["graph", "text"]]).bind(MODALITIES)
    with pytest.raises(ValueError, match="two or more"):
        ContrastiveObjective().bind(["text"])
    objective = ContrastiveObjective()
    objective.bind(MODALITIES)
    with pytest.raises(ValueError, match="not 'train'"):
        objective.update("train", *_batch())


def test_training_on_it_aligns_modalities_that_share_content() -> None:
    # two "modalities" seen through different random maps of the same latent z: what contrastive
    # learning is for. Trained on 256 pairs, retrieval on 64 new pairs goes from chance (1/64) to most.
    torch.manual_seed(0)
    maps = {"a": torch.randn(8, 16), "b": torch.randn(8, 12)}

    def pairs(n: int) -> dict[str, torch.Tensor]:
        z = torch.randn(n, 8)
        return {m: z @ w + 0.1 * torch.randn(n, w.shape[1]) for m, w in maps.items()}

    encoders = nn.ModuleDict({"a": nn.Linear(16, 32), "b": nn.Linear(12, 32)})
    objective = ContrastiveObjective(weight=1.0)
    objective.bind(["a", "b"])
    params = [*encoders.parameters(), *objective.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-2)
    held_out = pairs(64)
    present = {m: torch.ones(64, dtype=torch.bool) for m in maps}

    def recall_at_1() -> float:
        with torch.no_grad():
            objective.update("val", {m: encoders[m](x) for m, x in held_out.items()}, present)
        value = float(objective.compute("val")["val/retrieval/a_to_b/recall@1"])
        objective.reset("val")
        return value

    before = recall_at_1()
    everyone = {m: torch.ones(256, dtype=torch.bool) for m in maps}
    for _ in range(200):
        batch = pairs(256)
        loss = objective.loss({m: encoders[m](x) for m, x in batch.items()}, everyone).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert before < 0.2 and recall_at_1() > 0.8
