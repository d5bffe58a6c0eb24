import csv
import json
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


def _dm(manifest: Path, **kwargs: object) -> MultimodalDataModule:
    modalities = {
        "image": ImageDataModule(size=16),
        "text": TextDataModule(max_length=16, vocab_size=64),
        "audio": AudioDataModule(sample_rate=8000, n_fft=256, hop_length=128, n_mels=16),
    }
    return MultimodalDataModule(ManifestSource(str(manifest)), modalities, batch_size=4, **kwargs)  # type: ignore[arg-type]


def _rewrite(manifest: Path, index: int, **cells: str) -> None:
    with manifest.open() as f:
        rows = list(csv.DictReader(f))
    rows[index].update(cells)
    with manifest.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_batches_join_modalities_by_id(small_manifest: Path) -> None:
    dm = _dm(small_manifest)
    dm.setup("fit")
    assert dm.class_names == ["cat", "dog"] and dm.task == "label"
    batch = next(iter(dm.val_dataloader()))
    assert batch.ids == ["s8", "s9"]
    assert batch.inputs["image"]["pixel_values"].shape == (2, 3, 16, 16)
    assert batch.inputs["text"]["input_ids"].shape[0] == 2
    assert batch.inputs["audio"]["input_features"].shape[::2] == (2, 16)
    assert batch.targets["label"].tolist() == [1, 0]  # s8 is a dog, s9 a cat
    assert all(p.all() for p in batch.present.values())
    train = list(dm.train_dataloader())
    assert sorted(i for b in train for i in b.ids) == sorted(f"s{i}" for i in range(8))


def test_empty_cell_marks_the_modality_absent(small_manifest: Path) -> None:
    _rewrite(small_manifest, 8, audio="")
    dm = _dm(small_manifest)
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert batch.present["audio"].tolist() == [False, True]
    assert not batch.inputs["audio"]["feature_mask"][0].any()


def test_row_with_no_modality_is_an_error(small_manifest: Path) -> None:
    _rewrite(small_manifest, 9, image="", text="", audio="")
    dm = _dm(small_manifest)
    dm.setup("fit")
    with pytest.raises(DataError, match=r"row 10, id 's9': no modality present"):
        next(iter(dm.val_dataloader()))


def test_missing_file_names_file_row_id_and_column(small_manifest: Path) -> None:
    _rewrite(small_manifest, 8, image="media/gone.png")
    dm = _dm(small_manifest)
    dm.setup("fit")
    with pytest.raises(DataError, match=r"gone.png, row 9, id 's8', column 'image': file not found"):
        next(iter(dm.val_dataloader()))


def test_unknown_column_in_config(small_manifest: Path) -> None:
    dm = MultimodalDataModule(
        ManifestSource(str(small_manifest)), {"image": ImageDataModule(column="picture")}
    )
    with pytest.raises(
        DataError, match=r"manifest.csv, column 'picture': modality 'image' reads column 'picture'"
    ):
        dm.setup("fit")


def test_vocabulary_and_classes_travel_in_state_dict(small_manifest: Path) -> None:
    dm = _dm(small_manifest)
    dm.setup("fit")
    state = dm.state_dict()
    assert state["classes"] == ["cat", "dog"]
    fresh = _dm(small_manifest)
    fresh.load_state_dict(state)
    fresh.setup("test")
    a, b = next(iter(dm.test_dataloader())), next(iter(fresh.test_dataloader()))
    assert torch.equal(a.inputs["text"]["input_ids"], b.inputs["text"]["input_ids"])


def test_a_modality_datamodule_alone(small_manifest: Path) -> None:
    image = ImageDataModule(size=8, source=ManifestSource(str(small_manifest)), batch_size=3)
    dm = MultimodalDataModule.alone(image)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert list(batch.inputs) == ["image"] and batch.inputs["image"]["pixel_values"].shape == (3, 3, 8, 8)
    assert len(dm.class_names) == 2
    with pytest.raises(TypeError, match=r"MultimodalDataModule\.alone"):
        image.setup("fit")  # a modality serves no batches itself: the message says what does


def test_a_config_of_one_modality_is_served_by_its_join(small_manifest: Path, tmp_path: Path) -> None:
    import pytorch_lightning as pl

    from mmfuse.cli import MultimodalCLI
    from mmfuse.lit.module import MultimodalModule

    source = {"class_path": "mmfuse.data.ManifestSource", "init_args": {"path": str(small_manifest)}}
    data = {"class_path": "mmfuse.data.ImageDataModule", "init_args": {"size": 8, "source": source}}
    encoder = {"class_path": "mmfuse.models.encoders.ImageCNN", "init_args": {"d_model": 8, "channels": [4]}}
    cli = MultimodalCLI(
        MultimodalModule,
        pl.LightningDataModule,
        subclass_mode_data=True,
        args=[
            f"--data={json.dumps(data)}",
            f"--model.encoders={json.dumps({'image': encoder})}",
            "--model.fusion=mmfuse.models.fusion.ConcatFusion",
            "--model.fusion.init_args.d_model=8",
            "--trainer.logger=false",
            f"--trainer.default_root_dir={tmp_path}",
        ],
        run=False,
        auto_configure_optimizers=False,
    )
    assert isinstance(cli.datamodule, MultimodalDataModule)  # the join of the one configured modality
    assert list(cli.datamodule.modalities) == ["image"] and cli.datamodule.batch_size == 64
    assert [t["names"] for t in cli.model.tasks] == [["cat", "dog"]]


def test_workers_decode_the_same_batches(small_manifest: Path) -> None:
    serial, parallel = _dm(small_manifest), _dm(small_manifest, num_workers=2)
    serial.setup("fit")
    parallel.setup("fit")
    a, b = list(serial.test_dataloader()), list(parallel.test_dataloader())
    assert [x.ids for x in a] == [x.ids for x in b]
    assert torch.equal(a[0].inputs["image"]["pixel_values"], b[0].inputs["image"]["pixel_values"])


def _train_ids(dm: MultimodalDataModule) -> list[str]:
    return sorted(i for b in dm.train_dataloader() for i in b.ids)


def test_train_per_class_keeps_k_rows_of_each_class_by_seed(small_manifest: Path) -> None:
    dm = _dm(small_manifest, train_per_class=2, seed=0)
    dm.setup("fit")
    ids = _train_ids(dm)
    labels = {f"s{i}": "cat" if i % 2 else "dog" for i in range(12)}
    assert len(ids) == 4 and sorted(labels[i] for i in ids) == ["cat", "cat", "dog", "dog"]
    assert sum(len(b.ids) for b in dm.val_dataloader()) == 2  # evaluation keeps every row
    assert len(dm.rows("train")) == 8  # and so does what the text vocabulary is learnt from
    again = _dm(small_manifest, train_per_class=2, seed=0)
    again.setup("fit")
    assert _train_ids(again) == ids  # deterministic by seed
    draws = set()
    for seed in range(6):
        other = _dm(small_manifest, train_per_class=2, seed=seed)
        other.setup("fit")
        draws.add(tuple(_train_ids(other)))
        one = _dm(small_manifest, train_per_class=1, seed=seed)
        one.setup("fit")
        assert set(_train_ids(one)) <= set(_train_ids(other))  # nested: the same seed's k=1 is inside k=2
    assert len(draws) > 1  # the seed chooses the rows


def test_train_per_class_needs_a_class(small_manifest: Path) -> None:
    modalities = {"text": TextDataModule(max_length=16, vocab_size=64)}
    dm = MultimodalDataModule(ManifestSource(str(small_manifest), target=None), modalities, train_per_class=2)  # type: ignore[arg-type]
    dm.setup("fit")
    with pytest.raises(DataError, match="train_per_class needs a multiclass task"):
        dm.train_dataloader()
