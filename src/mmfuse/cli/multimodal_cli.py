"""The ``mmfuse`` command: LightningCLI with mmfuse's links, checkpointing and end-of-run report.

mmfuse fit --config configs/quickstart.yaml
mmfuse test --config configs/quickstart.yaml --ckpt_path runs/.../best.ckpt
mmfuse predict --config configs/quickstart.yaml --ckpt_path runs/.../best.ckpt
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from pytorch_lightning.plugins import CheckpointIO
from pytorch_lightning.utilities.rank_zero import rank_zero_only
from rich.console import Console
from rich.markup import escape

import mmfuse.models.encoders  # noqa: F401  (imported: `fit --help` lists the encoders as known subclasses)
from mmfuse.cli.checkpoint_use import read_local_checkpoint, tasks_for_data, use_checkpoint
from mmfuse.cli.help import HelpFormatter
from mmfuse.cli.run_report import console, finish_wandb, report_metrics
from mmfuse.cli.user_errors import config_errors
from mmfuse.data.manifest.tasks import TaskSpec
from mmfuse.data.multimodal import joined
from mmfuse.lit.checkpoint import RunCheckpoint
from mmfuse.lit.config_logging import RunConfigSaver
from mmfuse.lit.data_links import (
    build_data,
    builds_encoder_settings,
    check_data_matches_model,
    link_data_into_encoders,
    link_pretrained,
)
from mmfuse.lit.module import MultimodalModule
from mmfuse.lit.prediction_writer import PredictionWriter
from mmfuse.lit.progress import choose_progress_bar, stdout_is_terminal
from mmfuse.lit.quiet import silence_known_noise
from mmfuse.lit.resume import AtomicCheckpointIO, RandomState
from mmfuse.lit.run_directory import (
    checkpoint_facts,
    evaluation_directory,
    find_last_checkpoint,
    place_logger,
    run_of_checkpoint,
)
from mmfuse.lit.run_facts import RunFacts
from mmfuse.lit.safe_loading import restore_data_state
from mmfuse.lit.wandb.logger import WandbLogger
from mmfuse.lit.wandb.media import WandbMedia
from mmfuse.lit.wandb.run_identity import read_run_file


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
      the fuser's ``modalities``, so each is set once; ``validate``/``test``/``predict`` with a
      ``--ckpt_path`` take the tasks and their classes from the checkpoint instead (given to the data);
    - every checkpoint is read with ``weights_only=True``; a URL is downloaded once into mmfuse's
      cache, keyed by the whole URL (:mod:`mmfuse.lit.safe_loading`, :mod:`mmfuse.lit.checkpoint_source`);
    - what the data decides about each encoder (``in_channels``, the learnt ``vocab_size``, ``n_mels``)
      is filled into ``model.encoders`` before the model is built (the data is built first, once:
      :mod:`mmfuse.lit.data_links`);
    - parse errors are raised (``main`` prints user errors as one message), and the help is shorter
      (:class:`~mmfuse.cli.help.HelpFormatter`);
    - ``--checkpoint.*``: ModelCheckpoint, best by ``val/acc`` plus ``last.ckpt``;
    - ``--predictions.output``: where ``predict`` writes its CSV;
    - Weights & Biases by default (``WandbLogger``: offline without an account), the config logged
      once (``RunConfigSaver``), ``--media.*`` (``WandbMedia``), ``RunFacts``; every logger's
      ``save_dir`` is ``trainer.default_root_dir``; a resumed ``fit`` continues its W&B run;
    - after ``fit``, the best checkpoint is tested, ``test_metrics.json`` is written to the run
      directory, the W&B run is finished (its URL, or the ``wandb sync`` command, is printed) and the
      run directory is printed last.
    """

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        # parse errors are raised, so that main() prints them as one message (exit code 1)
        kwargs.setdefault("exit_on_error", False)
        kwargs.setdefault("formatter_class", HelpFormatter)  # shorter help, whole sentences
        return super().init_parser(**kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # the tasks (name, kind, class or label names) are the data's: plain dicts, so checkpoints stay plain
        parser.link_arguments("data", "model.tasks", self._data_tasks, apply_on="instantiate")
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
        self._checkpoint_tasks: list[TaskSpec] | None = None
        #: the checkpoint as given (a URL stays a URL in messages) and its local file
        self.checkpoint_source: str | None = None
        self.checkpoint_file: str | None = None
        config = self.config.get(self.subcommand) if self.subcommand else self.config
        command = self.subcommand or (self._evaluation[0] if self._evaluation else None)
        if config is None or command is None:
            return
        with config_errors():  # two settings that disagree, a model that is not installed
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
        used = use_checkpoint(config, ckpt, evaluate=command != "fit")
        self.checkpoint_source, self.checkpoint_file, self._checkpoint_tasks = used

    def _parse_ckpt_path(self) -> None:
        # Lightning reads a local checkpoint's hyper-parameters here, before anything else, with
        # torch's raw errors: read it first, so that a refused or truncated file is named clearly
        subcommand = self.config.get("subcommand")
        read_local_checkpoint(self.config[subcommand].get("ckpt_path") if subcommand else None)
        super()._parse_ckpt_path()

    def _data_tasks(self, data: Any) -> list[TaskSpec]:
        """The model's tasks: the checkpoint's when evaluating one (given to the data), else the data's."""
        tasks = getattr(self, "_checkpoint_tasks", None)
        return data.tasks if tasks is None else tasks_for_data(data, tasks, self.checkpoint_source)

    def instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        # a ValueError here is a constructor rejecting its settings (wrapped by jsonargparse inside links)
        with config_errors():
            data = built = None
            if builds_encoder_settings(config):
                # the data first: what it learns from the train split sizes the encoders (lit/data_links.py)
                built = build_data(config)
                data = joined(built)  # a config's `data` of one modality: the join of one
                if getattr(self, "_checkpoint_tasks", None) is not None:
                    self._data_tasks(data)  # the checkpoint's tasks, before the data reads its manifest
                    # its vocabulary too: the encoders are sized as trained, not by today's train split
                    restore_data_state(data, str(self.checkpoint_file), source=self.checkpoint_source)
                for note in link_data_into_encoders(config, data):
                    if getattr(rank_zero_only, "rank", 0) == 0:
                        Console(stderr=True, soft_wrap=True).print(f"[bold]note[/bold] {escape(note)}")
            self.config_init = self.parser.instantiate(self.config, instantiators=_reuse(data, type(built)))
            self.datamodule = self._get(self.config_init, "data")
            self.model = self._get(self.config_init, "model")
            self._add_configure_optimizers_method_to_model(self.subcommand)
            self.trainer = self.instantiate_trainer()

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
            elif isinstance(logger, WandbLogger):  # an evaluation: the checkpoint as given (a URL stays one)
                command = self.subcommand or (self._evaluation[0] if self._evaluation else "")
                logger.evaluate(command, self.checkpoint_source, self._train_run)
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
        command = self.subcommand or (self._evaluation[0] if self._evaluation else None)
        silence_known_noise(evaluating=command not in (None, "fit"))
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
        for callback in self.trainer.checkpoint_callbacks:
            if isinstance(callback, RunCheckpoint):
                callback.resuming = self._resume_step is not None
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
        report_metrics(self.trainer, results, checkpoint=best or "(final weights)")

    def after_test(self) -> None:
        self._report_stage("test")

    def after_validate(self) -> None:
        self._report_stage("val")

    def _report_stage(self, stage: str) -> None:
        metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith(f"{stage}/")}
        given = getattr(self, "checkpoint_source", None) or self.config_init[self.subcommand].get("ckpt_path")
        report_metrics(self.trainer, [metrics], str(given or ""), stage)  # a URL, not its copy in the cache

    def after_predict(self) -> None:
        callbacks = getattr(self.trainer, "callbacks", [])
        writer = next((c for c in callbacks if isinstance(c, PredictionWriter)), None)
        if writer is not None and writer.written is not None and self.trainer.is_global_zero:
            console.print(f"[bold]predictions[/bold] {writer.written}")
        finish_wandb(self.trainer)


def _reuse(data: Any, config_class: type) -> list[tuple[Any, type, bool]]:
    """A jsonargparse instantiator that hands out the DataModule already built (``data``) where the
    config names ``config_class``, instead of building a second one."""
    if data is None:
        return []

    def built(class_type: type, *args: Any, **kwargs: Any) -> Any:
        return data

    return [(built, config_class, False)]
