"""Bad samples in training: ``on_bad_sample: error`` names the place, ``skip`` loses nothing silently."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
from pytorch_lightning.loggers import CSVLogger

from mmfuse.data import DataError, ManifestSource, MultimodalDataModule
from mmfuse.data.selection import SKIPPED_CSV
from tests.data.messy import Messy, build_messy, modalities, source, tiny_module


class SeenIds(pl.Callback):
    def __init__(self) -> None:
        self.ids: dict[str, list[str]] = {"train": [], "val": [], "test": []}

    def on_train_batch_start(self, trainer: pl.Trainer, module: Any, batch: Any, *args: Any) -> None:
        self.ids["train"] += batch.ids

    def on_validation_batch_start(self, trainer: pl.Trainer, module: Any, batch: Any, *args: Any) -> None:
        self.ids["val"] += batch.ids

    def on_test_batch_start(self, trainer: pl.Trainer, module: Any, batch: Any, *args: Any) -> None:
        self.ids["test"] += batch.ids


def _trainer(tmp_path: Path, *callbacks: pl.Callback) -> pl.Trainer:
    return pl.Trainer(
        default_root_dir=tmp_path,
        accelerator="cpu",
        max_epochs=1,
        num_sanity_val_steps=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=CSVLogger(tmp_path, name="logs"),
        callbacks=list(callbacks),
    )


def _data(src: ManifestSource, **kwargs: Any) -> MultimodalDataModule:
    return MultimodalDataModule(src, modalities(), batch_size=4, **kwargs)


def test_skip_uses_every_good_row_and_lists_every_bad_one(tmp_path: Path) -> None:
    messy = build_messy(tmp_path / "messy")
    data = _data(source(messy), num_workers=2, on_bad_sample="skip", persistent_workers=False)
    seen = SeenIds()
    trainer = _trainer(tmp_path / "run", seen)
    trainer.fit(tiny_module(), datamodule=data)
    trainer.test(tiny_module(), datamodule=data, verbose=False)

    for split in ("train", "val", "test"):
        assert sorted(seen.ids[split]) == sorted(messy.good_ids[split]), split  # each good row once
    accounting = data.selection.accounting()
    assert set(accounting) == set(messy.rows)
    for split, count in accounting.items():
        assert count["used"] + count["skipped"] == count["rows"] == messy.rows[split], split
        assert count["skipped"] == len(messy.bad_ids[split]), split

    skipped_csv = Path(trainer.log_dir or "") / SKIPPED_CSV
    with skipped_csv.open() as f:
        listed = list(csv.DictReader(f))
    assert {int(r["row"]) for r in listed} == {row for row, _, _ in messy.planted}
    by_id = {r["id"]: r for r in listed if r["id"]}
    assert by_id["b_cut"]["column"] == "image" and by_id["b_cut"]["file"].endswith("cut.png")
    assert by_id["b_cut"]["split"] == "train" and "cannot decode image" in by_id["b_cut"]["reason"]
    assert by_id["b_nan"]["split"] == "val" and by_id["b_rate"]["split"] == "test"
    metrics = (Path(trainer.log_dir or "") / "metrics.csv").read_text()
    assert "data/train/skipped" in metrics  # the counts are logged too

    # predict may run on rows whose only problem is their target
    assert "b_label" in {r.id for r in data.rows("val", labelled=False)}
    assert "b_label" not in {r.id for r in data.rows("val")}


@pytest.fixture(scope="module")
def shared_messy(tmp_path_factory: pytest.TempPathFactory) -> Messy:
    return build_messy(tmp_path_factory.mktemp("messy"))


@pytest.mark.parametrize("which", range(19))
def test_error_mode_stops_at_each_planted_problem(tmp_path: Path, shared_messy: Messy, which: int) -> None:
    # the 14 good rows, then one planted bad row (row 15): training must stop there, naming it
    row, column, fragment = sorted(shared_messy.planted, key=lambda p: p[0])[which]
    header, *lines = shared_messy.manifest.read_text().splitlines(keepends=True)
    one = shared_messy.manifest.with_name(f"one{which}.csv")  # beside the media
    one.write_text(header + "".join(lines[:14]) + lines[row - 1])
    if column is None:  # a line-level problem: the line number moved with the row
        fragment = "line 16:" + fragment.split(":", 1)[1]
    data = _data(ManifestSource(str(one), classes=["cat", "dog"]))
    trainer = _trainer(tmp_path / "run")
    with pytest.raises(DataError) as info:
        trainer.fit(tiny_module(), datamodule=data)
        trainer.test(tiny_module(), datamodule=data, verbose=False)  # for a bad test row
    error = info.value
    assert (error.row, error.column) == (15, column) and fragment in error.reason, str(error)


def test_error_names_the_first_bad_row_of_the_manifest(tmp_path: Path) -> None:
    messy = build_messy(tmp_path / "messy")
    with pytest.raises(DataError, match=r"manifest\.csv, row 18: line 19: 7 fields where the header has 6"):
        _trainer(tmp_path / "run").fit(tiny_module(), datamodule=_data(source(messy)))


@pytest.mark.parametrize("workers", [0, 2])
def test_error_from_a_worker_is_raised_plainly_in_the_main_process(
    tmp_path: Path, small_manifest: Path, workers: int
) -> None:
    rows = list(csv.DictReader(small_manifest.open()))
    png = (small_manifest.parent / rows[9]["image"]).read_bytes()
    (small_manifest.parent / "media/cut.png").write_bytes(png[: len(png) // 2])
    rows[9]["image"] = "media/cut.png"  # s9, val, row 10
    with small_manifest.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    data = _data(ManifestSource(str(small_manifest)), num_workers=workers, persistent_workers=False)
    with pytest.raises(DataError) as info:
        _trainer(tmp_path / "run").fit(tiny_module(), datamodule=data)
    assert type(info.value) is DataError
    message = str(info.value)
    assert "cut.png, row 10, id 's9', column 'image': cannot decode image" in message
    assert "DataLoader worker" not in message and "Traceback" not in message
    assert info.value.split == "val" and info.value.row == 10  # every field survives the trip


def test_inner_join_keeps_complete_rows_and_says_how_many_it_dropped(
    tmp_path: Path, small_manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = list(csv.DictReader(small_manifest.open()))
    rows[1]["audio"], rows[4]["text"], rows[8]["image"] = "", "", ""  # train s1, s4; val s8
    with small_manifest.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    outer = _data(ManifestSource(str(small_manifest)))
    outer.setup("fit")
    assert len(outer.rows("train")) == 8 and not outer.selection.skipped()
    inner = _data(ManifestSource(str(small_manifest)), join="inner")
    inner.setup("fit")
    assert {r.id for r in inner.rows("train")} == {f"s{i}" for i in range(8)} - {"s1", "s4"}
    assert [r.id for r in inner.rows("val")] == ["s9"]
    assert [(e.sample_id, e.column) for e in inner.selection.skipped()] == [
        ("s1", "audio"),
        ("s4", "text"),
        ("s8", "image"),
    ]
    err = capsys.readouterr().err
    assert "train: skipped 2 of 8 rows, using 6 (inner join 2)" in err
    batch = next(iter(inner.train_dataloader()))
    assert all(p.all() for p in batch.present.values())
