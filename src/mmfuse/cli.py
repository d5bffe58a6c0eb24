"""The ``mmfuse`` command: LightningCLI with mmfuse's links, checkpointing and end-of-run report.

mmfuse fit --config configs/quickstart.yaml
mmfuse test --config configs/quickstart.yaml --ckpt_path runs/.../best.ckpt
mmfuse predict --config configs/quickstart.yaml --ckpt_path runs/.../best.ckpt
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.plugins import CheckpointIO
from rich.console import Console

from mmfuse.lit.callbacks import PredictionWriter
from mmfuse.lit.module import MultimodalModule
from mmfuse.lit.resume import AtomicCheckpointIO, RandomState, find_last_checkpoint

# soft_wrap: paths are printed whole, never broken across lines
console = Console(soft_wrap=True)


def _sorted_keys(encoders: Any) -> list[str]:
    return sorted(encoders or {})


class MultimodalCLI(LightningCLI):
    """LightningCLI for :class:`~mmfuse.lit.module.MultimodalModule` and any LightningDataModule
    that exposes ``num_classes``, ``class_names`` and ``task`` (MultimodalDataModule, or one
    modality's DataModule for a single-modality run).

    Added on top of LightningCLI:

    - the data's classes and task name are linked into the model, and the encoders' names into
      the fuser's ``modalities``, so each is set once;
    - ``--checkpoint.*``: ModelCheckpoint, best by ``val/acc`` plus ``last.ckpt``;
    - ``--predictions.output``: where ``predict`` writes its CSV;
    - after ``fit``, the best checkpoint is tested, ``test_metrics.json`` is written to the run
      directory, and the run directory is printed last.
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data", "model.num_classes", lambda dm: dm.num_classes, apply_on="instantiate")
        parser.link_arguments("data", "model.class_names", lambda dm: dm.class_names, apply_on="instantiate")
        parser.link_arguments("data", "model.task", lambda dm: dm.task, apply_on="instantiate")
        parser.link_arguments("model.encoders", "model.fusion.init_args.modalities", _sorted_keys)
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/acc",
                "checkpoint.mode": "max",
                "checkpoint.save_last": True,
                "checkpoint.filename": "best-epoch{epoch:03d}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        parser.add_lightning_class_args(PredictionWriter, "predictions")

    def before_instantiate_classes(self) -> None:
        self._resume_version: str | None = None
        config = self.config.get(self.subcommand) if self.subcommand else None
        if self.subcommand == "fit" and config is not None and config.get("ckpt_path") == "last":
            root = config.trainer.get("default_root_dir") or os.getcwd()
            last = find_last_checkpoint(root)
            if last is None:
                raise FileNotFoundError(f"--ckpt_path last: no checkpoints/last.ckpt under {root}")
            config.ckpt_path = str(last)
            self._resume_version = last.parent.parent.name  # continue logging in the same run directory

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        trainer_config = self._get(self.config_init, "trainer", default={})
        if trainer_config.get("logger") in (None, True):
            # Lightning's own default depends on whether tensorboard happens to be installed;
            # mmfuse's is fixed: a CSV logger under default_root_dir
            root = trainer_config.get("default_root_dir") or os.getcwd()
            version = getattr(self, "_resume_version", None)
            trainer_config["logger"] = CSVLogger(save_dir=root, name="lightning_logs", version=version)
        # every run: atomic checkpoint writes and random states saved for an exact resume
        plugins = trainer_config.get("plugins") or []
        plugins = list(plugins) if isinstance(plugins, list | tuple) else [plugins]
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            trainer_config["plugins"] = [*plugins, AtomicCheckpointIO()]
        trainer_config["callbacks"] = [*(trainer_config.get("callbacks") or []), RandomState()]
        return super().instantiate_trainer(**kwargs)

    def before_fit(self) -> None:
        describe = getattr(self.datamodule, "describe", None)
        if describe is not None and self.trainer.is_global_zero:
            console.print(f"[bold]data[/bold] {describe()}")

    def after_fit(self) -> None:
        if self.trainer.interrupted:
            return
        best = getattr(self.trainer.checkpoint_callback, "best_model_path", "")
        ckpt = "best" if best else None
        results = self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt, verbose=False)
        self._report(results, checkpoint=best or "(final weights)")

    def after_test(self) -> None:
        results = [{k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith("test/")}]
        self._report(results, checkpoint=str(self.config_init[self.subcommand].get("ckpt_path") or ""))

    def after_predict(self) -> None:
        callbacks = getattr(self.trainer, "callbacks", [])
        writer = next((c for c in callbacks if isinstance(c, PredictionWriter)), None)
        if writer is not None and writer.written is not None and self.trainer.is_global_zero:
            console.print(f"[bold]predictions[/bold] {writer.written}")

    def _report(self, results: Sequence[Mapping[str, Any]], checkpoint: str) -> None:
        if not self.trainer.is_global_zero:
            return
        metrics = {k: float(v) for part in results for k, v in part.items()}
        run_dir = Path(self.trainer.log_dir or self.trainer.default_root_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        out = run_dir / "test_metrics.json"
        out.write_text(json.dumps({"checkpoint": checkpoint, **metrics}, indent=2) + "\n")
        console.print(
            "[bold]test metrics[/bold] " + "  ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
        )
        console.print(f"[bold]checkpoint[/bold] {checkpoint}")
        console.print(f"[bold]run directory[/bold] {run_dir}")


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``mmfuse`` command."""
    MultimodalCLI(
        MultimodalModule,
        pl.LightningDataModule,
        subclass_mode_data=True,
        args=args,
        auto_configure_optimizers=False,
    )


if __name__ == "__main__":
    main()
