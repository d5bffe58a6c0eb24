"""The model's threads and the loader's workers share the cores instead of oversubscribing them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from mmfuse.lit import cpu_threads


@pytest.fixture
def threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("cores", "processes", "workers", "start", "expected"),
    [
        (2, 1, 2, 2, 1),  # 2 workers take both cores: the model keeps one thread, never none
        (16, 1, 4, 16, 12),
        (16, 2, 3, 8, 5),  # each of 2 processes owns 8 cores, 3 of them for its workers
        (16, 1, 0, 4, 4),  # below its share already (OMP_NUM_THREADS=4): kept, never raised
        (2, 1, 0, 2, 2),
    ],
)
def test_threads_are_the_process_share_minus_its_workers(
    threads: None,
    monkeypatch: pytest.MonkeyPatch,
    cores: int,
    processes: int,
    workers: int,
    start: int,
    expected: int,
) -> None:
    monkeypatch.setattr(cpu_threads, "available_cores", lambda: cores)
    torch.set_num_threads(start)
    assert cpu_threads.share_cores(workers, processes) == expected
    assert torch.get_num_threads() == expected


def test_a_fit_shares_the_cores_with_its_datamodule_workers(
    threads: None, monkeypatch: pytest.MonkeyPatch, synthetic_root: Path, tmp_path: Path
) -> None:
    """Through a real fit: the datamodule's workers and the trainer's devices are what count."""
    import pytorch_lightning as pl

    from mmfuse.data import AudioDataModule, ImageDataModule, MultimodalDataModule, SyntheticSource
    from mmfuse.data.manifest.tasks import TaskSpec
    from mmfuse.lit.module import MultimodalModule
    from mmfuse.models.encoders import AudioCNN, ImageCNN
    from mmfuse.models.fusion import ConcatFusion

    monkeypatch.setattr(cpu_threads, "available_cores", lambda: 4)
    torch.set_num_threads(4)
    source = SyntheticSource(root=str(synthetic_root), num_samples=160, image_size=24)
    modalities = {
        "audio": AudioDataModule(sample_rate=8000, n_fft=256, hop_length=256, n_mels=16),
        "image": ImageDataModule(size=16),
    }
    data = MultimodalDataModule(source, modalities, batch_size=80, num_workers=1)  # type: ignore[arg-type]
    encoders = {
        "audio": AudioCNN(n_mels=16, d_model=16, channels=[8]),
        "image": ImageCNN(d_model=16, channels=[8]),
    }
    fusion = ConcatFusion(["audio", "image"], d_model=16, hidden=16)
    tasks = [TaskSpec(name="label", kind="multiclass", names=["a", "b", "c", "d"])]
    module = MultimodalModule(encoders, fusion, tasks=tasks)  # type: ignore[arg-type]
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=False,
    )
    trainer.fit(module, datamodule=data)
    assert torch.get_num_threads() == 3  # 4 cores, 1 process, 1 worker
