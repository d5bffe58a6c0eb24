"""The ``mmfuse`` command: LightningCLI with mmfuse's links, checkpointing and end-of-run report.

mmfuse fit --config configs/quickstart.yaml
mmfuse test --config configs/quickstart.yaml --ckpt_path runs/.../best.ckpt
mmfuse predict --config configs/quickstart.yaml --ckpt_path runs/.../best.ckpt
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from pytorch_lightning.plugins import CheckpointIO
from rich.console import Console

from mmfuse.lit.callbacks import PredictionWriter
from mmfuse.lit.config_logging import RunConfigSaver
from mmfuse.lit.module import MultimodalModule
from mmfuse.lit.progress import choose_progress_bar, stdout_is_terminal
from mmfuse.lit.quiet import silence_known_noise
from mmfuse.lit.resume import AtomicCheckpointIO, RandomState, find_last_checkpoint
from mmfuse.lit.run_directory import run_directory
from mmfuse.lit.run_facts import RunFacts
from mmfuse.lit.wandb_logger import WandbLogger
from mmfuse.lit.wandb_media import WandbMedia
from mmfuse.pretrained import link_pretrained

# soft_wrap: paths are printed whole, never broken across lines
console = Console(soft_wrap=True)


def _sorted_keys(encoders: Any) -> list[str]:
    return sorted(encoders or {})


def _root_or_cwd(default_root_dir: str | None) -> str:
    return default_root_dir or os.getcwd()


class MultimodalCLI(LightningCLI):
    """LightningCLI for :class:`~mmfuse.lit.module.MultimodalModule` and any LightningDataModule
    that exposes ``tasks`` (MultimodalDataModule, or one modality's DataModule for a
    single-modality run).

    Added on top of LightningCLI:

    - the data's tasks (names, kinds, classes) are linked into the model, and the encoders' names into
      the fuser's ``modalities``, so each is set once;
    - ``--checkpoint.*``: ModelCheckpoint, best by ``val/acc`` plus ``last.ckpt``;
    - ``--predictions.output``: where ``predict`` writes its CSV;
    - Weights & Biases by default (``WandbLogger``: offline without an account), the config logged
      once (``RunConfigSaver``), ``--media.*`` (``WandbMedia``), ``RunFacts``; every logger's
      ``save_dir`` is ``trainer.default_root_dir``; a resumed ``fit`` continues its W&B run;
    - after ``fit``, the best checkpoint is tested, ``test_metrics.json`` is written to the run
      directory, the W&B run is finished (its URL, or the ``wandb sync`` command, is printed) and the
      run directory is printed last.
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # the tasks (name, kind, class or label names) are the data's: plain dicts, so checkpoints stay plain
        parser.link_arguments("data", "model.tasks", lambda dm: dm.tasks, apply_on="instantiate")
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
        parser.add_lightning_class_args(WandbMedia, "media")
        # the logger's files go under default_root_dir too (W&B: <root>/wandb/, <root>/<project>/<run id>/)
        parser.link_arguments("trainer.default_root_dir", "trainer.logger.init_args.save_dir", _root_or_cwd)

    def before_instantiate_classes(self) -> None:
        self._resume_version: str | None = None
        config = self.config.get(self.subcommand) if self.subcommand else None
        if config is not None:
            link_pretrained(config)  # the text data's tokenizer, image mean/std from HF encoders
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
            # mmfuse's is fixed: W&B (offline without an account) under default_root_dir
            root = trainer_config.get("default_root_dir") or os.getcwd()
            trainer_config["logger"] = WandbLogger(save_dir=root)
        loggers = trainer_config["logger"]
        for logger in loggers if isinstance(loggers, list) else [loggers]:
            if isinstance(logger, WandbLogger) and self.subcommand == "fit":
                logger.continue_run(self._get(self.config_init, "ckpt_path"))  # resume: the same W&B run
        if self.save_config_callback is SaveConfigCallback:
            self.save_config_callback = RunConfigSaver  # config.yaml in the run directory, and to W&B
        # every run: atomic checkpoint writes and random states saved for an exact resume
        plugins = trainer_config.get("plugins") or []
        plugins = list(plugins) if isinstance(plugins, list | tuple) else [plugins]
        sharded = "fsdp" in type(trainer_config.get("strategy")).__name__.lower() or (
            str(trainer_config.get("strategy")).startswith("fsdp")
        )  # FSDP writes sharded checkpoints its own way
        if not sharded and not any(isinstance(p, CheckpointIO) for p in plugins):
            trainer_config["plugins"] = [*plugins, AtomicCheckpointIO()]
        # `--trainer.enable_progress_bar false` removes a configured bar; plain lines when stdout is a file
        enabled = trainer_config.get("enable_progress_bar") is not False
        callbacks = choose_progress_bar(trainer_config.get("callbacks") or [], enabled, stdout_is_terminal())
        trainer_config["callbacks"] = [*callbacks, RandomState(), RunFacts()]
        silence_known_noise(evaluating=self.subcommand in ("validate", "test", "predict"))
        return super().instantiate_trainer(**kwargs)

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> pl.Trainer:
        if config.get("enable_checkpointing") is False:
            # `--trainer.enable_checkpointing false` also turns off the checkpoint callback added here
            callbacks = [c for c in callbacks if not isinstance(c, ModelCheckpoint)]
        return super()._instantiate_trainer(config, callbacks)

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
        self._report_stage("test")

    def after_validate(self) -> None:
        self._report_stage("val")

    def _report_stage(self, stage: str) -> None:
        metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith(f"{stage}/")}
        self._report([metrics], str(self.config_init[self.subcommand].get("ckpt_path") or ""), stage)

    def after_predict(self) -> None:
        callbacks = getattr(self.trainer, "callbacks", [])
        writer = next((c for c in callbacks if isinstance(c, PredictionWriter)), None)
        if writer is not None and writer.written is not None and self.trainer.is_global_zero:
            console.print(f"[bold]predictions[/bold] {writer.written}")
        self._finish_wandb()

    def _report(self, results: Sequence[Mapping[str, Any]], checkpoint: str, stage: str = "test") -> None:
        if not self.trainer.is_global_zero:
            return
        metrics = {k: float(v) for part in results for k, v in part.items()}
        run_dir = run_directory(self.trainer)
        run_dir.mkdir(parents=True, exist_ok=True)
        out = run_dir / f"{stage}_metrics.json"
        out.write_text(json.dumps({"checkpoint": checkpoint, **metrics}, indent=2) + "\n")
        console.print(
            f"[bold]{stage} metrics[/bold] " + "  ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
        )
        console.print(f"[bold]checkpoint[/bold] {checkpoint}")
        self._finish_wandb()
        console.print(f"[bold]run directory[/bold] {run_dir}")

    def _finish_wandb(self) -> None:
        """End the W&B run and say where it is: its URL, or the `wandb sync` command that uploads it."""
        for logger in self.trainer.loggers:
            where = logger.finish() if isinstance(logger, WandbLogger) else None
            if where:
                console.print(f"[bold]W&B[/bold] {where}")


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``mmfuse`` command."""
    from mmfuse.commands import COMMANDS

    argv = sys.argv[1:] if args is None else list(args)
    if argv in (["--version"], ["-V"]):
        from mmfuse import __version__

        print(f"{__package__} {__version__}")
        return
    if argv and argv[0] in COMMANDS:  # mmfuse's own commands: check-data, ablate
        code = COMMANDS[argv[0]](argv[1:])
        if code:
            raise SystemExit(code)
        return
    MultimodalCLI(
        MultimodalModule,
        pl.LightningDataModule,
        subclass_mode_data=True,
        args=args,
        auto_configure_optimizers=False,
    )


if __name__ == "__main__":
    main()
