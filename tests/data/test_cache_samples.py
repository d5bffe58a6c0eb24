"""``cache_samples``: each split decoded once and served from memory, except what augmentation changes."""

import os
import pickle
import shutil
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import pytest
import torch

from mmfuse.data import (
    AudioDataModule,
    DataError,
    ImageDataModule,
    ManifestSource,
    MultimodalDataModule,
    TextDataModule,
)
from mmfuse.types import Batch
from tests.data.test_multimodal import _rewrite


def _dm(
    manifest: Path, hflip: bool = False, max_seconds: float = 1.0, **kwargs: object
) -> MultimodalDataModule:
    modalities = {
        "image": ImageDataModule(size=16, hflip=hflip),
        "text": TextDataModule(max_length=16, vocab_size=64),
        "audio": AudioDataModule(
            sample_rate=8000, max_seconds=max_seconds, n_fft=256, hop_length=128, n_mels=16
        ),
    }
    dm = MultimodalDataModule(ManifestSource(str(manifest)), modalities, batch_size=4, seed=3, **kwargs)  # type: ignore[arg-type]
    dm.setup("fit")
    return dm


def _epochs(loader: torch.utils.data.DataLoader, epochs: int = 2) -> list[Batch]:
    batches = []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        batches += list(loader)
    return batches


def _same(a: list[Batch], b: list[Batch]) -> bool:
    if [x.ids for x in a] != [x.ids for x in b]:
        return False
    return all(
        torch.equal(x.inputs[m][k], y.inputs[m][k])
        for x, y in zip(a, b, strict=True)
        for m in x.inputs
        for k in x.inputs[m]
    )


@pytest.mark.parametrize("workers", [0, 2])
def test_kept_samples_need_no_file_and_equal_decoded_ones(
    small_manifest: Path, workers: int, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = _dm(small_manifest, num_workers=workers)
    expected_train, expected_val = _epochs(plain.train_dataloader()), _epochs(plain.val_dataloader())
    cached = _dm(small_manifest, num_workers=workers, cache_samples=True)
    train, val = cached.train_dataloader(), cached.val_dataloader()
    err = capsys.readouterr().err
    assert "train: 8 of 8 samples kept in memory" in err and "val: 2 of 2 samples kept in memory" in err
    shutil.rmtree(small_manifest.parent / "media")  # whatever is decoded from now on fails
    assert _same(_epochs(train), expected_train) and _same(_epochs(val), expected_val)


@pytest.mark.parametrize(
    "augmentation", [{"hflip": True}, {"max_seconds": 0.1}], ids=["image_flip", "audio_crop"]
)
def test_augmented_train_samples_are_decoded_each_time(
    small_manifest: Path, augmentation: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = _dm(small_manifest, **augmentation)
    expected = _epochs(plain.train_dataloader(), epochs=3)
    cached = _dm(small_manifest, cache_samples=True, **augmentation)
    train, val = cached.train_dataloader(), cached.val_dataloader()
    err = capsys.readouterr().err
    assert "train: 0 of 8 samples kept" in err and "val: 2 of 2 samples kept" in err  # val never augments
    assert _same(_epochs(train, epochs=3), expected)  # a new draw each epoch, as without the cache
    for media in (small_manifest.parent / "media").glob("*.png"):
        media.unlink()
    assert len(_epochs(val)) == 2  # val is kept
    with pytest.raises(DataError, match="file not found"):
        next(iter(train))  # train is decoded again


def test_a_bad_row_stops_the_run_when_its_split_is_kept(small_manifest: Path) -> None:
    _rewrite(small_manifest, 8, image="media/gone.png")
    dm = _dm(small_manifest, cache_samples=True)
    dm.train_dataloader()  # the bad row is in val
    with pytest.raises(DataError, match=r"gone.png, row 9, id 's8', column 'image': file not found"):
        dm.val_dataloader()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts this process's file descriptors")
def test_a_kept_split_travels_to_spawned_workers_in_one_piece(small_manifest: Path) -> None:
    """Spawned workers (macOS, Windows) get the dataset pickled by torch's pickler, which would share
    every kept tensor through a file descriptor of its own."""

    def descriptors_to_pickle(dataset: object) -> tuple[int, bytes]:
        open_before = len(os.listdir("/proc/self/fd"))
        data = ForkingPickler.dumps(dataset)
        return len(os.listdir("/proc/self/fd")) - open_before, data

    dm = _dm(small_manifest)
    uncached = dm.train_dataloader().dataset
    descriptors_to_pickle(uncached)  # the first share of the modalities' tensors opens their descriptors
    plain, _ = descriptors_to_pickle(uncached)
    dm.cache_samples = True
    dataset = dm.train_dataloader().dataset  # the same modalities, and kept samples
    opened, data = descriptors_to_pickle(dataset)
    assert opened == plain  # the modalities' own tensors (mel filters, ...); none per kept sample
    shutil.rmtree(small_manifest.parent / "media")
    copy = pickle.loads(data)
    for index in range(len(dataset)):
        kept, received = dataset[index], copy[index]
        assert received["id"] == kept["id"] and received["targets"] == kept["targets"]
        for name, sample in kept["inputs"].items():
            assert all(torch.equal(received["inputs"][name][k], t) for k, t in sample.items())
