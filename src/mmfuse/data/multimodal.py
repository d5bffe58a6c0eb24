"""MultimodalDataModule: joins the per-modality DataModules by sample id and collates ``Batch``es."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from mmfuse.data.dataset import Collate, ManifestDataset
from mmfuse.data.decode import missing_columns
from mmfuse.data.manifest.errors import ConfigError, DataError
from mmfuse.data.manifest.manifest import Manifest, Row
from mmfuse.data.manifest.source import ManifestSource
from mmfuse.data.manifest.splits import refuse_bad_splits, split_sizes
from mmfuse.data.manifest.tasks import TaskSpec, first_multiclass
from mmfuse.data.modalities.base import ModalityDataModule
from mmfuse.data.sampling import ResumableDataLoader, ShardSampler
from mmfuse.data.say import say
from mmfuse.data.selection import Join, OnBadSample, RowSelection, SkipReport, per_class


class MultimodalDataModule(pl.LightningDataModule):
    """Reads the manifest once and serves batches of every configured modality, joined by sample id.

    Args:
        source: where the samples come from (a manifest file, or the synthetic quickstart data).
        modalities: modality name -> its DataModule (which column, how to decode). The names must
            match the model's ``encoders``.
        batch_size: samples per batch (per process under DDP).
        num_workers: DataLoader worker processes that decode files in parallel.
        pin_memory: pin host memory for faster copies to the GPU.
        persistent_workers: keep workers alive between epochs (only with ``num_workers > 0``).
        predict_split: which rows ``predict`` runs on.
        on_bad_sample: what a bad sample (missing or corrupt file, bad target, ...) does. ``error``:
            the first one stops the run with an error naming row, id, column, file and reason.
            ``skip``: every split is checked before use (decoded in ``num_workers`` processes), bad
            rows are left out, counted per split and reason, and listed in ``skipped_samples.csv`` in
            the run directory. ``mmfuse check-data`` reports the same problems without training.
        join: ``outer``: a row with some modality cells empty is used, with those modalities masked
            out. ``inner``: only rows with every modality are used; the others are counted and listed
            like skipped rows.
        seed: seed of the training order and of train-time augmentation (default: the
            ``seed_everything`` value, else 0). The order depends only on (seed, epoch).
        train_per_class: train on at most this many rows per class of the first multiclass task,
            drawn by ``seed`` (few-label training; val, test and the text vocabulary keep every row).
        cache_samples: decode each split once, in the training process when its DataLoader is made,
            and serve its samples from memory (shared with the workers) instead of decoding them every
            epoch. Train samples that augmentation changes are still decoded each time. The log gives
            each split's size in memory (the quickstart's 3,000 samples: ~46 MB; under DDP every
            process keeps the whole split). For datasets that fit in memory.
    """

    def __init__(
        self,
        source: ManifestSource,
        modalities: dict[str, ModalityDataModule],
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = True,
        predict_split: Literal["train", "val", "test", "all"] = "test",
        seed: int | None = None,
        on_bad_sample: OnBadSample = "error",
        join: Join = "outer",
        train_per_class: int | None = None,
        cache_samples: bool = False,
    ) -> None:
        super().__init__()
        if not modalities:
            raise ValueError("`modalities` is empty: configure at least one modality")
        if batch_size < 1:
            raise ConfigError(f"data.init_args.batch_size must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise ConfigError(f"data.init_args.num_workers must be >= 0, got {num_workers}")
        self.source = source
        # sorted once, here where they are received: the batches, the row selection and the
        # encoders' order (ARCHITECTURE: modalities in sorted key order) all follow this dict
        self.modalities = dict(sorted(modalities.items()))
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.predict_split = predict_split
        self.seed = int(os.environ.get("PL_GLOBAL_SEED", 0)) if seed is None else seed
        self.on_bad_sample = on_bad_sample
        self.join = join
        self.train_per_class = train_per_class
        self.cache_samples = cache_samples
        self._manifest: Manifest | None = None
        self._load_problems: list[DataError] = []
        self._selection: RowSelection | None = None
        self._skip_report: SkipReport | None = None
        self._restored_classes: dict[str, list[str]] = {}
        self._fitted = False

    @classmethod
    def alone(cls, modality: ModalityDataModule) -> MultimodalDataModule:
        """The join of one modality: a single-modality run, with the modality's own ``source``,
        ``batch_size`` and ``num_workers`` (what a config's ``data`` of one modality means).

        Raises:
            ConfigError: the modality has no ``source``.
        """
        if modality.source is None:
            raise ConfigError(
                f"{type(modality).__name__} used on its own needs `source` (the manifest); "
                "inside MultimodalDataModule the source is given there instead."
            )
        return cls(
            source=modality.source,
            modalities={modality.name: modality},
            batch_size=modality.batch_size,
            num_workers=modality.num_workers,
        )

    # --- what the model is linked to ----------------------------------------------------------

    @property
    def manifest(self) -> Manifest:
        """The parsed manifest (read on first use, after the source has prepared it)."""
        if self._manifest is None:
            self.source.prepare()
            # skip mode: every bad row is collected (and later skipped) instead of raising on the first
            manifest = self.source.load(self._load_problems if self.on_bad_sample == "skip" else None)
            whole_file = [e for e in self._load_problems if e.row is None]
            if whole_file:
                raise whole_file[0]  # e.g. no target column: not a row that can be skipped
            missing = missing_columns(manifest, self.modalities)
            if missing:
                raise missing[0]
            for task, classes in self._restored_classes.items():
                manifest.set_classes(task, classes)
            self._manifest = manifest
        return self._manifest

    @property
    def tasks(self) -> list[TaskSpec]:
        """Every task (name, kind, class or label names), plain: what the CLI links into the model."""
        return [t.spec() for t in self.manifest.tasks]

    @property
    def class_names(self) -> list[str]:
        """The class names of the first multiclass task (``[]`` without one)."""
        return self.manifest.classes

    @property
    def task(self) -> str | None:
        """The name of the first multiclass task (its key in ``Batch.targets``), or None."""
        first = first_multiclass(self.tasks)
        return first["name"] if first else None

    def _check_target_columns(self) -> None:
        """Training and evaluation need every target column (predict does not: see ``Task.resolve``)."""
        manifest = self.manifest
        for task in manifest.tasks:
            for column in task.target_columns:
                if column not in manifest.columns:
                    raise DataError(
                        f"task {task.name!r} reads column {column!r}, which the manifest does not have "
                        f"(columns: {manifest.columns})",
                        file=str(manifest.path),
                        column=column,
                    )

    # --- LightningDataModule hooks -----------------------------------------------------------

    def prepare_data(self) -> None:
        self.source.prepare()

    def setup(self, stage: str) -> None:
        manifest = self.manifest
        if stage != "predict":
            self._check_target_columns()
        self.fit_modalities()
        # skip mode decodes the splits this stage reads, once, before their first batch
        predict: list[str] = ["train", "val", "test"] if self.predict_split == "all" else [self.predict_split]
        if stage == "fit":
            refuse_bad_splits(manifest)
        self._select({"fit": ["train", "val"], "validate": ["val"], "test": ["test"]}.get(stage, predict))
        if stage == "fit":
            for split in ("train", "val"):
                if not self.rows(split):  # every row of the split skipped (on_bad_sample: skip)
                    raise DataError(
                        f"no usable row in the {split!r} split: all {len(manifest.split(split))} were "
                        "left out (on_bad_sample: skip or join: inner; see skipped_samples.csv)",
                        file=str(manifest.path),
                        split=split,
                    )

    def fit_modalities(self) -> None:
        """Let each modality learn from the train split (e.g. the text vocabulary), once; a restored
        checkpoint's state counts as learnt. The CLI calls it before the model is built, so that what
        the data learns (the vocabulary size) can size the encoders."""
        if not self._fitted:
            train_rows = self.manifest.split("train")
            for dm in self.modalities.values():
                dm.fit([c for r in train_rows if (c := r.cells.get(dm.column, "")).strip()])
            self._fitted = True

    @property
    def selection(self) -> RowSelection:
        """Which rows are used (``join``, ``on_bad_sample``) and the record of those left out."""
        if self._selection is None:
            self._selection = RowSelection(
                self.manifest,
                self.modalities,
                self.on_bad_sample,
                self.join,
                self._load_problems,
                self.num_workers,
            )
        return self._selection

    def _select(self, splits: list[str]) -> None:
        new = self.selection.prepare(splits)
        report = self.selection.report(new) if new else None
        if report is not None and self._global_zero:
            for line in report.lines:
                say(line)
        self._skip_report = report

    @property
    def _global_zero(self) -> bool:
        return self.trainer is None or self.trainer.is_global_zero

    def take_skip_report(self) -> SkipReport | None:
        """What the last ``setup`` left out (None: nothing), once; ``setup`` printed its lines. The
        Lightning layer logs the counts and writes ``skipped_samples.csv`` in the run directory."""
        report, self._skip_report = self._skip_report, None
        return report

    def rows(self, split: str, labelled: bool = True) -> list[Row]:
        """The rows used for ``split`` (``all``: every split), after ``join`` and ``on_bad_sample``."""
        return self.selection.rows(split, labelled)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, DataError):
            raise batch  # a bad sample found in a DataLoader worker, raised here in the main process
        return batch

    def _loader(self, split: str, train: bool = False, labelled: bool = True) -> DataLoader:
        rows = self.rows(split, labelled)
        if train and self.train_per_class is not None:
            rows = per_class(rows, self.manifest, self.train_per_class, self.seed)
        if not rows:
            raise DataError(f"the {split!r} split has no rows", file=str(self.manifest.path))
        dataset = ManifestDataset(self.manifest, rows, self.modalities, train=train, labelled=labelled)
        if self.cache_samples:
            started = time.perf_counter()
            kept, size = dataset.keep_in_memory()
            took, memory = time.perf_counter() - started, f"{size / 1e6:.1f} MB"
            if self._global_zero:
                say(f"{split}: {kept:,} of {len(rows):,} samples kept in memory ({memory}, {took:.1f} s)")
        # Under DDP each process reads its own shard; evaluation shards never repeat a sample, so
        # metrics synced across processes equal the single-process ones (see data/sampling.py).
        sampler = ShardSampler(len(dataset), shuffle=train, seed=self.seed, even=train)
        loader_class = ResumableDataLoader if train else DataLoader
        return loader_class(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            collate_fn=Collate(self.modalities, {t.name: t.kind for t in self.manifest.tasks}),
            # worker seeds come from this generator, not from the global random stream
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.predict_split, labelled=False)

    # --- what travels with a checkpoint ------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "classes": list(self.class_names),  # the first multiclass task's, for readers of the file
            "task_classes": {t.name: list(t.names) for t in self.manifest.tasks if t.kind != "regression"},
            "modalities": {name: dm.state_dict() for name, dm in self.modalities.items()},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # the checkpoint's class order wins, per task: the model's outputs were trained in that order
        restored = state_dict["task_classes"]
        self._restored_classes = {name: list(classes) for name, classes in restored.items()}
        if self._manifest is not None:
            for task, classes in self._restored_classes.items():
                self._manifest.set_classes(task, classes)
        for name, state in state_dict.get("modalities", {}).items():
            if name in self.modalities:
                self.modalities[name].load_state_dict(state)
        self._fitted = True

    def describe(self) -> str:
        """One line per split with its size, for the start of a run."""
        m = self.manifest
        sizes = split_sizes(m)
        if len(m.tasks) == 1 and m.tasks[0].kind == "multiclass":
            return f"{Path(m.path)}: {sizes}; modalities {list(self.modalities)}; classes {m.classes}"
        tasks = "; ".join(f"{t.name} ({t.kind}{': ' + str(t.names) if t.names else ''})" for t in m.tasks)
        return f"{Path(m.path)}: {sizes}; modalities {list(self.modalities)}; tasks {tasks or 'none'}"


def joined(data: pl.LightningDataModule) -> pl.LightningDataModule:
    """A lone modality as the join of one (:meth:`MultimodalDataModule.alone`); others as they are."""
    return MultimodalDataModule.alone(data) if isinstance(data, ModalityDataModule) else data
