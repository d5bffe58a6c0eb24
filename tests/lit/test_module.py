"""MultimodalModule built in Python (not through the CLI): training, metrics, checkpoints."""

from __future__ import annotations

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
    TextDataModule,
)
from mmfuse.data.manifest.tasks import TaskSpec
from mmfuse.lit.module import MultimodalModule
from mmfuse.models.encoders import AudioCNN, ImageCNN, TextRNN
from mmfuse.models.fusion import ConcatFusion, CrossModalAttentionFusion, LateFusion


def _data(root: Path, source: ManifestSource | None = None) -> MultimodalDataModule:
    source = source or SyntheticSource(root=str(root), num_samples=160, image_size=24)
    modalities = {
        "audio": AudioDataModule(sample_rate=8000, n_fft=256, hop_length=256, n_mels=16),
        "image": ImageDataModule(size=16),
        "text": TextDataModule(vocab_size=64),
    }
    return MultimodalDataModule(source, modalities, batch_size=32, num_workers=0)  # type: ignore[arg-type]


LABELS = ["zero", "one", "two", "three"]


def label_task(names: list[str] = LABELS) -> list[TaskSpec]:
    return [TaskSpec(name="label", kind="multiclass", names=names)]


def _module(fusion: str = "cross", tasks: list[TaskSpec] | None = None, **kwargs: object) -> MultimodalModule:
    names = ["audio", "image", "text"]
    fusers = {
        "cross": CrossModalAttentionFusion(names, d_model=16, num_heads=2),
        "concat": ConcatFusion(names, d_model=16, hidden=16),
        "late": LateFusion(names, d_model=16),
    }
    encoders = {
        "audio": AudioCNN(n_mels=16, d_model=16, channels=[16]),
        "image": ImageCNN(d_model=16, channels=[8]),
        "text": TextRNN(vocab_size=64, d_model=16, embed_dim=16, hidden_size=16),
    }
    tasks = label_task() if tasks is None else tasks
    return MultimodalModule(encoders, fusers[fusion], tasks=tasks, **kwargs)  # type: ignore[arg-type]


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


@pytest.mark.parametrize("fusion", ["cross", "concat", "late"])
def test_one_epoch_logs_epoch_metrics_and_updates_every_parameter(
    fusion: str, synthetic_root: Path, tmp_path: Path
) -> None:
    module = _module(fusion)
    before = {k: v.clone() for k, v in module.state_dict().items() if v.is_floating_point()}
    trainer = _trainer(tmp_path, enable_checkpointing=False)
    trainer.fit(module, datamodule=_data(synthetic_root))
    logged = trainer.logged_metrics
    assert {"train/loss", "train/acc", "val/acc", "val/f1", "val/loss"} <= set(logged)
    assert "val/auroc" not in logged  # AUROC only for two classes
    changed = [k for k, v in module.state_dict().items() if k in before and not torch.equal(v, before[k])]
    params = {n for n, _ in module.named_parameters()}
    assert params <= set(changed), params - set(changed)


def test_checkpoint_of_a_python_built_module_loads_safely(synthetic_root: Path, tmp_path: Path) -> None:
    module = _module("concat")
    trainer = _trainer(tmp_path)
    trainer.fit(module, datamodule=_data(synthetic_root))
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    ckpt = torch.load(path, weights_only=True)  # no pickled modules or functions
    assert "encoders" not in ckpt["hyper_parameters"] and ckpt["hyper_parameters"]["tasks"] == [
        {"name": "label", "kind": "multiclass", "names": LABELS}
    ]
    assert ckpt["MultimodalDataModule"]["classes"] == ["zero", "one", "two", "three"]
    # live modules are not in the checkpoint, so they are passed again
    fresh = _module("concat")
    loaded = MultimodalModule.load_from_checkpoint(
        path, encoders=fresh.model.encoders, fusion=fresh.model.fusion
    )
    assert loaded.class_names == LABELS and loaded.tasks == label_task()
    for k, v in module.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k


def test_binary_tasks_get_auroc(small_manifest: Path, tmp_path: Path) -> None:
    module = _module("concat", label_task(["cat", "dog"]))
    trainer = _trainer(tmp_path, enable_checkpointing=False)
    trainer.fit(module, datamodule=_data(tmp_path, ManifestSource(str(small_manifest))))  # cat / dog
    assert "val/auroc" in trainer.logged_metrics


def test_bad_tasks_are_refused() -> None:
    with pytest.raises(ValueError, match=r"task 'label' \(multiclass\) has classes \['a'\]: too few"):
        _module(tasks=label_task(["a"]))
    with pytest.raises(ValueError, match="task 'label' is declared twice"):
        _module(tasks=label_task() * 2)
    with pytest.raises(ValueError, match=r"task_weights names tasks \['lable'\]"):
        _module(task_weights={"lable": 2.0})
    with pytest.raises(ValueError, match="no task and no auxiliary objective"):
        _module(tasks=[])


def test_fuser_modalities_must_match_encoders() -> None:
    with pytest.raises(ValueError, match=r"fuser is set up for modalities \['audio', 'image'\]"):
        MultimodalModule(
            {"audio": AudioCNN(d_model=16), "text": TextRNN(10, d_model=16)},
            ConcatFusion(["audio", "image"], d_model=16),
            tasks=label_task(),
        )


def test_encoder_width_must_match_fuser() -> None:
    with pytest.raises(ValueError, match=r"encoder 'audio' has d_model=8 but the fuser has d_model=16"):
        MultimodalModule(
            {"audio": AudioCNN(d_model=8)}, ConcatFusion(["audio"], d_model=16), tasks=label_task()
        )
