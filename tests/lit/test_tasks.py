"""Several tasks in one module: masked losses by hand, masked metric updates, and the keys logged."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from mmfuse.data import (
    AudioDataModule,
    ImageDataModule,
    ManifestSource,
    MultimodalDataModule,
    SyntheticSource,
    Task,
    TaskSpec,
    TextDataModule,
)
from mmfuse.lit.module import MultimodalModule
from mmfuse.lit.prediction_writer import _cells, _columns
from mmfuse.lit.task_metrics import metric_collection, update_metrics
from mmfuse.models.encoders import AudioCNN, ImageCNN, TextRNN
from mmfuse.models.fusion import ConcatFusion, LateFusion
from mmfuse.models.multimodal import ModelOutput
from mmfuse.types import Batch, FusionOutput
from tests.conftest import write_manifest

SPECS = [
    TaskSpec(name="label", kind="multiclass", names=["a", "b", "c"]),
    TaskSpec(name="cues", kind="multilabel", names=["x", "y"]),
    TaskSpec(name="score", kind="regression", names=[]),
]
NAN = math.nan


def _text_module(specs: list[TaskSpec] = SPECS, fusion: str = "concat", **kwargs: object) -> MultimodalModule:
    encoder = TextRNN(vocab_size=16, d_model=8, embed_dim=8, hidden_size=8)
    fuser = (
        ConcatFusion(["text"], d_model=8, hidden=8) if fusion == "concat" else LateFusion(["text"], d_model=8)
    )
    return MultimodalModule({"text": encoder}, fuser, tasks=specs, **kwargs)  # type: ignore[arg-type]


def _text_batch(targets: dict[str, torch.Tensor]) -> Batch:
    B = len(next(iter(targets.values())))
    g = torch.Generator().manual_seed(0)
    inputs = {
        "input_ids": torch.randint(1, 16, (B, 5), generator=g),
        "attention_mask": torch.ones(B, 5).bool(),
    }
    return Batch(
        inputs={"text": inputs},
        present={"text": torch.ones(B, dtype=torch.bool)},
        targets=targets,
        ids=[f"s{i}" for i in range(B)],
    )


def test_masked_losses_equal_a_hand_computation() -> None:
    module = _text_module(task_weights={"cues": 0.5, "score": 2.0}, label_smoothing=0.1)
    g = torch.Generator().manual_seed(1)
    logits = {"label": torch.randn(4, 3, generator=g), "cues": torch.randn(4, 2, generator=g)}
    logits["score"] = torch.randn(4, 1, generator=g)
    targets = {
        "label": torch.tensor([0, -1, 2, 1]),
        "cues": torch.tensor([[1.0, 0.0], [NAN, NAN], [0.0, NAN], [1.0, 1.0]]),
        "score": torch.tensor([0.5, NAN, NAN, 2.0]),
    }
    out = ModelOutput(
        logits=logits, fused=FusionOutput(torch.zeros(4, 8), {}, {}), embeddings={}, unimodal={}
    )
    losses = module.task_losses(out, _text_batch(targets))

    def ce(row: int, y: int, eps: float = 0.1) -> float:
        logp = logits["label"][row].log_softmax(-1).tolist()
        return (1 - eps) * -logp[y] + eps * -sum(logp) / 3

    def bce(x: float, y: float) -> float:
        p = 1 / (1 + math.exp(-x))
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    label = (ce(0, 0) + ce(2, 2) + ce(3, 1)) / 3  # row 1 unlabelled
    c = logits["cues"]
    cues = (bce(c[0, 0], 1) + bce(c[0, 1], 0) + bce(c[2, 0], 0) + bce(c[3, 0], 1) + bce(c[3, 1], 1)) / 5
    s = logits["score"][:, 0]
    score = ((s[0] - 0.5) ** 2 + (s[3] - 2.0) ** 2).item() / 2
    assert losses["label"].value.item() == pytest.approx(label, rel=1e-5) and losses["label"].observed == 3
    assert losses["cues"].value.item() == pytest.approx(cues, rel=1e-5) and losses["cues"].observed == 5
    assert losses["score"].value.item() == pytest.approx(score, rel=1e-5) and losses["score"].observed == 2
    total = module.total_loss(losses, {})
    assert total.item() == pytest.approx(label + 0.5 * cues + 2.0 * score, rel=1e-5)


@pytest.mark.parametrize("fusion", ["concat", "late"])
def test_a_task_without_targets_adds_zero_and_keeps_its_head_in_the_graph(fusion: str) -> None:
    module = _text_module(fusion=fusion)
    targets = {
        "label": torch.tensor([0, 1, 2]),
        "cues": torch.full((3, 2), NAN),
        "score": torch.full((3,), NAN),
    }
    batch = _text_batch(targets)
    out = module(batch)
    assert {k: tuple(v.shape) for k, v in out.logits.items()} == {
        "label": (3, 3),
        "cues": (3, 2),
        "score": (3, 1),
    }
    assert out.embeddings["text"].shape == (3, 8)
    losses = module.task_losses(out, batch)
    assert losses["cues"].value.item() == 0 and losses["score"].value.item() == 0
    total = module.total_loss(losses, module.aux_losses(out, batch.present, batch))
    assert total.item() == pytest.approx(losses["label"].value.item())
    total.backward()
    # every parameter gets a gradient (zeros for the heads without targets): what DDP needs
    missing = [n for n, p in module.named_parameters() if p.grad is None]
    assert not missing, missing
    assert all(p.grad is not None and not p.grad.any() for p in module.model.heads["score"].parameters())


def test_masked_targets_never_enter_a_metric() -> None:
    reg = metric_collection(SPECS[2], "val/")
    n = update_metrics(
        reg, "regression", torch.tensor([[2.0], [100.0], [3.5]]), torch.tensor([1.0, NAN, 3.0])
    )
    assert n == 2 and reg.compute()["val/mae"].item() == pytest.approx(0.75)  # (1 + 0.5) / 2
    ml = metric_collection(SPECS[1], "val/cues/")
    logits = torch.tensor([[2.0, 5.0], [9.0, 9.0], [-1.0, 3.0]])  # (0, 1) predicted 1: wrong were it a 0
    n = update_metrics(ml, "multilabel", logits, torch.tensor([[1.0, NAN], [NAN, NAN], [0.0, 1.0]]))
    assert n == 2 and ml.compute()["val/cues/acc"].item() == 1.0
    mc = metric_collection(SPECS[0], "val/label/")
    assert update_metrics(mc, "multiclass", torch.randn(2, 3), torch.tensor([-1, -1])) == 0
    assert mc["acc"].update_count == 0  # a batch without targets is not an update at all


def _trainer(tmp_path: Path, **kwargs: object) -> pl.Trainer:
    return pl.Trainer(
        default_root_dir=tmp_path,
        accelerator="cpu",
        max_epochs=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        **kwargs,  # type: ignore[arg-type]
    )


MULTITASK = [
    Task(name="label"),
    Task(name="cues", kind="multilabel", columns=["cue_image", "cue_text", "cue_audio"]),
    Task(name="tone_khz", kind="regression"),
]


def test_several_tasks_log_per_task_keys_and_train_every_head(synthetic_root: Path, tmp_path: Path) -> None:
    source = SyntheticSource(root=str(synthetic_root), num_samples=160, image_size=24, tasks=MULTITASK)
    modalities = {
        "audio": AudioDataModule(sample_rate=8000, n_fft=256, hop_length=256, n_mels=16),
        "image": ImageDataModule(size=16),
        "text": TextDataModule(vocab_size=64),
    }
    data = MultimodalDataModule(source, modalities, batch_size=32, num_workers=0)  # type: ignore[arg-type]
    encoders = {
        "audio": AudioCNN(n_mels=16, d_model=16, channels=[16]),
        "image": ImageCNN(d_model=16, channels=[8]),
        "text": TextRNN(vocab_size=64, d_model=16, embed_dim=16, hidden_size=16),
    }
    fusion = ConcatFusion(["audio", "image", "text"], d_model=16, hidden=16)
    module = MultimodalModule(encoders, fusion, tasks=data.tasks, task_weights={"cues": 0.5})  # type: ignore[arg-type]
    before = {k: v.clone() for k, v in module.state_dict().items()}
    trainer = _trainer(tmp_path, enable_checkpointing=False)
    trainer.fit(module, datamodule=data)
    metrics = {
        "label": ["acc", "f1", "loss"],
        "cues": ["acc", "f1", "auroc", "loss"],
        "tone_khz": ["mae", "rmse", "r2", "loss"],
    }
    per_task = {
        f"{stage}/{task}/{m}" for stage in ("train", "val") for task, ms in metrics.items() for m in ms
    }
    assert set(trainer.logged_metrics) == per_task | {"train/loss", "val/loss"}
    logged = trainer.logged_metrics
    expected = logged["val/label/loss"] + 0.5 * logged["val/cues/loss"] + logged["val/tone_khz/loss"]
    assert logged["val/loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    for task in metrics:  # every head was trained
        assert all(
            not torch.equal(v, before[k]) for k, v in module.state_dict().items() if f"heads.{task}." in k
        )


def test_a_task_with_no_target_in_the_epoch_logs_nothing(small_manifest: Path, tmp_path: Path) -> None:
    with small_manifest.open() as f:
        rows = list(csv.DictReader(f))
    for i, row in enumerate(rows):
        row["score"] = "" if row["split"] == "val" else str(i)
    manifest = write_manifest(tmp_path / "m.csv", rows)
    tasks = [Task(name="label"), Task(name="score", kind="regression")]
    data = MultimodalDataModule(
        ManifestSource(str(manifest), tasks=tasks), {"text": TextDataModule(vocab_size=16)}, batch_size=4
    )
    module = _text_module(data.tasks)
    trainer = _trainer(tmp_path, enable_checkpointing=False)
    trainer.fit(module, datamodule=data)
    logged = set(trainer.logged_metrics)
    [test] = trainer.test(module, datamodule=data, verbose=False)
    assert {"val/label/acc", "val/loss", "train/score/mae"} <= logged and not any(
        "val/score" in k for k in logged
    )
    assert {"test/score/mae", "test/label/acc"} <= set(test)


def test_prediction_csv_columns_per_kind() -> None:
    # one task: a single-target run's columns; several: prefixed by the task's name
    probs = ["0.200000", "0.500000", "0.300000"]
    assert _columns(SPECS[0], prefixed=False) == [
        "prediction",
        "label",
        "correct",
        "prob_a",
        "prob_b",
        "prob_c",
    ]
    assert _columns(SPECS[1], prefixed=False) == ["prob_x", "prob_y", "label_x", "label_y"]
    assert _columns(SPECS[2], prefixed=False) == ["prediction", "label"]
    assert _columns(SPECS[1], prefixed=True) == ["cues/prob_x", "cues/prob_y", "cues/label_x", "cues/label_y"]
    # the true label and whether the prediction is it; empty where the target is unknown
    assert _cells(SPECS[0], [0.2, 0.5, 0.3], 1) == ["b", "b", "1", *probs]
    assert _cells(SPECS[0], [0.2, 0.5, 0.3], 2) == ["b", "c", "0", *probs]
    assert _cells(SPECS[0], [0.2, 0.5, 0.3], -1) == ["b", "", "", *probs]
    assert _cells(SPECS[0], [0.2, 0.5, 0.3]) == ["b", "", "", *probs]  # no targets returned
    assert _cells(SPECS[1], [0.25, 0.75], [1.0, math.nan]) == ["0.250000", "0.750000", "1", ""]
    assert _cells(SPECS[2], 1.25, 2.0) == ["1.25", "2"]
    assert _cells(SPECS[2], 1.25, math.nan) == ["1.25", ""]


@pytest.mark.parametrize("kind", ["multiclass", "multilabel"])
def test_metrics_do_not_depend_on_how_samples_fall_into_batches(kind: str) -> None:
    # logits that all lie in [0, 1] in one batch: torchmetrics would take them for probabilities
    # there and apply softmax/sigmoid in the other batch only, unless the module passes probabilities
    g = torch.Generator().manual_seed(0)
    k = 2 if kind == "multiclass" else 3  # two classes: the multiclass task has an AUROC too
    small = torch.rand(8, k, generator=g)  # (B, K) logits inside [0, 1]
    large = 4 * torch.randn(8, k, generator=g)  # (B, K) logits outside
    if kind == "multiclass":
        target = torch.randint(0, k, (16,), generator=g)
    else:
        target = torch.randint(0, 2, (16, k), generator=g).float()
    spec = {"name": "t", "kind": kind, "names": ["a", "b", "c"][:k]}
    split, whole = metric_collection(spec, "val/"), metric_collection(spec, "val/")  # type: ignore[arg-type]
    update_metrics(split, kind, small, target[:8])  # type: ignore[arg-type]
    update_metrics(split, kind, large, target[8:])  # type: ignore[arg-type]
    update_metrics(whole, kind, torch.cat([small, large]), target)  # type: ignore[arg-type]
    by_batch, at_once = split.compute(), whole.compute()
    assert by_batch.keys() == at_once.keys()
    for key in at_once:
        assert torch.equal(by_batch[key], at_once[key]), key
