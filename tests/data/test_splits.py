"""Problems of the splits as a whole: check-data lists them, fit refuses before the first step."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl

from mmfuse.data import DataError, ManifestSource, MultimodalDataModule
from mmfuse.data.problems import check
from tests.data.messy import CLASSES, modalities, tiny_module


def _rewrite(manifest: Path, change: dict[int, dict[str, str]]) -> Path:
    """Change cells of some rows (0-based) of a manifest in place."""
    rows = list(csv.DictReader(manifest.open()))
    for i, cells in change.items():
        rows[i].update(cells)
    with manifest.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest


class Started(pl.Callback):
    def __init__(self) -> None:
        self.started = False

    def on_train_start(self, trainer: pl.Trainer, module: Any) -> None:
        self.started = True


def _fit(
    tmp_path: Path, source: ManifestSource, started: Started | None = None, classes: list[str] = CLASSES
) -> None:
    """Fit the tiny model; ``started`` records whether training began."""
    started = started or Started()
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[started],
    )
    trainer.fit(
        tiny_module(classes=classes), datamodule=MultimodalDataModule(source, modalities(), batch_size=4)
    )


def test_an_empty_split_is_listed_and_fit_refuses_before_training(
    tmp_path: Path, small_manifest: Path
) -> None:
    _rewrite(small_manifest, {10: {"split": "val"}, 11: {"split": "val"}})  # no test row left
    report = check(ManifestSource(str(small_manifest)), modalities(), num_workers=0)
    [problem] = report.problems
    assert problem.row is None and problem.split == "test" and problem.file == str(small_manifest)
    assert problem.reason.startswith("the 'test' split has no rows (rows per split: train=8, val=4, test=0)")
    started = Started()
    with pytest.raises(
        DataError, match=r"the 'test' split has no rows \(rows per split: train=8, val=4, test=0\)"
    ):
        _fit(tmp_path, ManifestSource(str(small_manifest)), started)
    assert not started.started  # refused at setup, not after an epoch of training


def test_a_class_only_in_val_is_listed_and_refused_unless_classes_names_it(
    tmp_path: Path, small_manifest: Path
) -> None:
    _rewrite(small_manifest, {8: {"label": "bird"}, 9: {"label": "bird"}})  # s8, s9: the val rows
    report = check(ManifestSource(str(small_manifest)), modalities(), num_workers=0)
    [problem] = report.problems
    assert (problem.row, problem.column, problem.split) == (None, "label", "val")
    assert problem.reason.startswith(
        "class 'bird' of task 'label' is only in val, never in train: rows 9 ('s8'), 10 ('s9'); "
        "list it in `classes`"
    )
    with pytest.raises(DataError, match=r"class 'bird' of task 'label' is only in val, never in train"):
        _fit(tmp_path, ManifestSource(str(small_manifest)))
    # listed in `classes`: the user's decision, no problem, training runs
    listed = ManifestSource(str(small_manifest), classes=["bird", "cat", "dog"])
    assert check(listed, modalities(), num_workers=0).ok
    data = MultimodalDataModule(listed, modalities(), batch_size=4)
    data.setup("fit")
    assert data.class_names == ["bird", "cat", "dog"]
    started = Started()
    _fit(tmp_path, listed, started, classes=["bird", "cat", "dog"])
    assert started.started


def test_several_split_problems_are_named_together(tmp_path: Path, small_manifest: Path) -> None:
    _rewrite(small_manifest, {i: {"split": "train"} for i in (8, 9)} | {11: {"label": "bird"}})
    data = MultimodalDataModule(ManifestSource(str(small_manifest)), modalities(), batch_size=4)
    with pytest.raises(DataError) as info:
        data.setup("fit")
    message = str(info.value)
    assert message.startswith(
        f"file {small_manifest}: 2 problems with the splits: the 'val' split has no rows"
    )
    assert "class 'bird' of task 'label' is only in test, never in train: rows 12 ('s11')" in message


def test_a_split_whose_every_row_is_skipped(tmp_path: Path, small_manifest: Path) -> None:
    _rewrite(small_manifest, {i: {"image": "media/gone.png"} for i in (8, 9)})  # both val rows
    data = MultimodalDataModule(
        ManifestSource(str(small_manifest)), modalities(), batch_size=4, on_bad_sample="skip"
    )
    with pytest.raises(DataError, match=r"no usable row in the 'val' split: all 2 were left out"):
        data.setup("fit")
