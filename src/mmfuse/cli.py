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
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from pytorch_lightning.plugins import CheckpointIO
from pytorch_lightning.utilities.rank_zero import rank_zero_only
from rich.console import Console

from mmfuse.lit.callbacks import PredictionWriter
from mmfuse.lit.checkpoint import RunCheckpoint
from mmfuse.lit.config_logging import RunConfigSaver
from mmfuse.lit.data_check import check_data_matches_model
from mmfuse.lit.module import MultimodalModule
from mmfuse.lit.resume import AtomicCheckpointIO, RandomState
from mmfuse.lit.run_directory import (
    checkpoint_facts,
    evaluation_directory,
    find_last_checkpoint,
    place_logger,
    run_directory,
    run_of_checkpoint,
)
from mmfuse.lit.run_facts import RunFacts
from mmfuse.lit.wandb_logger import WandbLogger, read_run_file
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
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
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

    def __init__(self, *args: Any, evaluation: tuple[str, str | None] | None = None, **kwargs: Any) -> None:
        """``evaluation``: (command, checkpoint) of an mmfuse command that evaluates a checkpoint with
        this CLI built but not run (``ablate``); LightningCLI's own subcommands need none."""
        self._evaluation = evaluation
        super().__init__(*args, **kwargs)

    def before_instantiate_classes(self) -> None:
        #: where this command's run writes when not in a folder of its own: a resumed fit's run
        #: directory, or an evaluation's <run>/eval/<time>-<command>
        self._run_dir: Path | None = None
        self._resume_step: int | None = None
        self._train_run: dict[str, Any] | None = None
        config = self.config.get(self.subcommand) if self.subcommand else self.config
        command = self.subcommand or (self._evaluation[0] if self._evaluation else None)
        if config is None or command is None:
            return
        link_pretrained(config)  # the text data's tokenizer, image mean/std from HF encoders
        ckpt = config.get("ckpt_path") if self.subcommand else self._evaluation[1]  # type: ignore[index]
        root = config.trainer.get("default_root_dir") or os.getcwd()
        if ckpt == "last":  # this experiment's last.ckpt: the run whose config has these encoders and fuser
            ckpt = str(find_last_checkpoint(root, config.as_dict()))
            if self.subcommand:
                config.ckpt_path = ckpt
            console.print(f"[bold]--ckpt_path last[/bold] {ckpt}")
        self.checkpoint: str | None = ckpt  # resolved: `last` is a path now
        if command == "fit":
            self._run_dir = run_of_checkpoint(ckpt) if ckpt else None  # resume: continue that run
            self._resume_step = checkpoint_facts(ckpt).get("global_step") if ckpt and self._run_dir else None
        else:
            self._run_dir = evaluation_directory(ckpt, root, command)
            self._train_run = read_run_file(run_of_checkpoint(ckpt)) if ckpt else None

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        trainer_config = self._get(self.config_init, "trainer", default={})
        if trainer_config.get("logger") in (None, True):
            # Lightning's own default depends on whether tensorboard happens to be installed;
            # mmfuse's is fixed: W&B (offline without an account) under default_root_dir
            root = trainer_config.get("default_root_dir") or os.getcwd()
            trainer_config["logger"] = WandbLogger(save_dir=root)
        loggers = trainer_config["logger"]
        ckpt = self._get(self.config_init, "ckpt_path") if self.subcommand else None
        for logger in loggers if isinstance(loggers, list) else [loggers] if loggers else []:
            if self._run_dir is not None:
                place_logger(logger, self._run_dir, self._resume_step)
            if isinstance(logger, WandbLogger) and self.subcommand == "fit":
                logger.continue_run(ckpt)  # resume: the same W&B run
            elif isinstance(logger, WandbLogger):
                command, evaluated = (
                    (self.subcommand, ckpt) if self.subcommand else self._evaluation or ("", None)
                )
                logger.evaluate(command, evaluated, self._train_run)
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
        callbacks = list(trainer_config.get("callbacks") or [])
        if trainer_config.get("enable_progress_bar") is False:
            # so that `--trainer.enable_progress_bar false` works with configs that add a progress bar
            callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
        trainer_config["callbacks"] = [*callbacks, RandomState(), RunFacts()]
        return super().instantiate_trainer(**kwargs)

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> pl.Trainer:
        if config.get("enable_checkpointing") is False:
            # `--trainer.enable_checkpointing false` also turns off the checkpoint callback added here
            callbacks = [c for c in callbacks if not isinstance(c, ModelCheckpoint)]
        return super()._instantiate_trainer(config, callbacks)

    def check_before_start(self, stage: str) -> None:
        """Read the data and check it against the model before the trainer starts, so that a data or
        config mistake stops the command before anything is written to disk or to W&B (rank 0; the
        other processes check as their stage starts)."""
        data, model = self.datamodule, self.model
        # the rank from the environment: before the trainer starts, its own rank is not set yet
        if data is None or getattr(rank_zero_only, "rank", 0) != 0:
            return
        data.trainer = self.trainer  # rows left out in skip mode are reported in the run directory
        data.prepare_data()
        data.setup(stage)
        if isinstance(model, MultimodalModule):
            check_data_matches_model(data, model.model)

    def before_fit(self) -> None:
        self.check_before_start("fit")
        describe = getattr(self.datamodule, "describe", None)
        if describe is not None and self.trainer.is_global_zero:
            console.print(f"[bold]data[/bold] {describe()}")

    def before_validate(self) -> None:
        self.check_before_start("validate")

    def before_test(self) -> None:
        self.check_before_start("test")

    def before_predict(self) -> None:
        self.check_before_start("predict")

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
