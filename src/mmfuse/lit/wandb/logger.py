"""mmfuse's Weights & Biases logger: offline without an account, never a login prompt, resumable.

On top of Lightning's ``WandbLogger``:

- **No account needed.** Without credentials (``WANDB_API_KEY``, a ``~/.netrc`` entry for the
  W&B host) the run is logged offline and ``wandb sync <run folder>`` uploads it later; W&B is
  never left to ask for a key (:mod:`mmfuse.lit.wandb.offline`). ``WANDB_MODE`` (``offline``,
  ``disabled``) and the other ``WANDB_*`` variables are respected.
- **Config once, nested.** The CLI logs its whole resolved config (see ``config_logging.py``);
  after that the model's and data's hyper-parameters, which repeat parts of it, are not logged again.
- **Resume.** :meth:`WandbLogger.continue_run` reads the run id stored in a checkpoint (or in
  ``wandb_run.json`` of its run directory: :mod:`mmfuse.lit.wandb.run_identity`), so a resumed fit
  continues the same run.
- **Checkpoint artifacts** (``log_model``) carry the monitored metric, epoch, step and the config.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import WandbLogger as LightningWandbLogger
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.loggers.utilities import _scan_checkpoints
from pytorch_lightning.utilities.rank_zero import rank_zero_info, rank_zero_only

from mmfuse.lit.run_directory import checkpoint_facts
from mmfuse.lit.wandb.offline import resolve_mode, sync_command
from mmfuse.lit.wandb.run_identity import is_live, stored_run_id, write_run_file

#: the CLI config as a file of the W&B run (W&B's own ``config.yaml`` there holds the run config)
CONFIG_FILE = "lightning_config.yaml"


# the run the last mmfuse logger of this process started: finished before a new one starts, so a
# CLI call that failed half-way (a notebook, a test session) cannot leave it open to be reused
_last_run: Any = None


class WandbLogger(LightningWandbLogger):
    """Lightning's WandbLogger, set up so that a run never waits for a login and can be resumed.

    Every argument is a plain, typed option (``--trainer.logger.init_args.<name>``). The CLI links
    ``save_dir`` to ``trainer.default_root_dir``: the run's folder is ``<save_dir>/<project>/<run id>``
    (checkpoints, ``config.yaml``, ``test_metrics.json``) and W&B's own files go to
    ``<save_dir>/wandb/`` (or ``$WANDB_DIR``).

    Args:
        project: W&B project (default: ``$WANDB_PROJECT``, else ``mmfuse``).
        entity: team or user that owns the project (default: ``$WANDB_ENTITY`` or your default entity).
        name: display name of the run (default: W&B's random name).
        group: group runs together, e.g. the folds of a cross-validation.
        tags: labels to filter runs by.
        notes: a longer description of the run.
        job_type: the kind of run, e.g. ``train`` or ``eval``.
        log_model: upload checkpoints as ``model`` artifacts: True = best and last at the end of
            fit, ``"all"`` = every checkpoint as it is written, False = none.
        offline: log offline even when credentials exist (``wandb sync`` uploads later).
        id: the run id, to continue a run (set by resume from the checkpoint).
        save_dir: where the run's folders go (linked to ``trainer.default_root_dir`` by the CLI).
        checkpoint_name: name of the model artifact (default ``model-<run id>``).
    """

    def __init__(
        self,
        project: str | None = None,
        entity: str | None = None,
        name: str | None = None,
        group: str | None = None,
        tags: list[str] | None = None,
        notes: str | None = None,
        job_type: str | None = None,
        log_model: bool | Literal["all"] = False,
        offline: bool = False,
        id: str | None = None,
        save_dir: str | None = None,
        checkpoint_name: str | None = None,
    ) -> None:
        init: dict[str, Any] = {"entity": entity, "group": group, "tags": tags, "notes": notes}
        init["job_type"] = job_type
        super().__init__(
            name=name,
            save_dir=save_dir,  # type: ignore[arg-type]  # None: Lightning falls back to default_root_dir
            id=id,
            project=project or os.environ.get("WANDB_PROJECT") or "mmfuse",
            log_model=log_model,
            checkpoint_name=checkpoint_name,
            **{k: v for k, v in init.items() if v is not None},
        )
        self._wandb_init.pop("anonymous", None)  # deprecated by W&B; never a reason to prompt
        self._force_offline = offline
        #: why the run was switched offline (None: W&B's own mode applies)
        self.offline_reason: str | None = None
        #: the CLI's resolved config, once logged (also the artifacts' metadata)
        self.cli_config: dict[str, Any] | None = None
        self._finished = False
        #: the run directory when it is not ``<save_dir>/<project>/<run id>``: an evaluation's
        #: ``<run>/eval/<time>-<command>`` (set by the CLI through ``run_directory.place_logger``)
        self.run_dir: Path | None = None
        self._evaluates: dict[str, Any] | None = None

    # --- creating the run (rank 0) -----------------------------------------------------------

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        global _last_run
        if self._experiment is None and getattr(self, "_attach_id", None) is None:
            self._prepare_init()
        run = super().experiment
        if run is not _last_run and is_live(run) and not self._finished:
            _last_run = run
            write_run_file(run, Path(self.log_dir))
            if self._evaluates is not None:
                self._record_evaluation(run)
        return run

    def evaluate(self, command: str, checkpoint: str | None, train_run: Mapping[str, Any] | None) -> None:
        """Make this run the evaluation of a training run's checkpoint (call before the run starts):
        the training run's group, ``job_type`` = ``command``, its name with ``-<command>``; the
        checkpoint, the training run's id and its model artifact are recorded in the run."""
        train = dict(train_run or {})
        if train.get("group") or train.get("id"):
            self._wandb_init.setdefault("group", train.get("group") or train["id"])
        self._wandb_init.setdefault("job_type", command)
        if train.get("name") and not self._wandb_init.get("name"):
            self._wandb_init["name"] = f"{train['name']}-{command}"
        self._evaluates = {"command": command, "checkpoint": checkpoint, "train_run": train.get("id")}

    def _record_evaluation(self, run: Any) -> None:
        assert self._evaluates is not None
        run.config.update({"evaluation": self._evaluates}, allow_val_change=True)
        train_id, checkpoint = self._evaluates["train_run"], self._evaluates["checkpoint"] or ""
        if not train_id or run.offline:
            return  # offline, W&B cannot look an artifact up: the config above names the checkpoint
        alias = "last" if Path(checkpoint).name == "last.ckpt" else "best"
        try:
            run.use_artifact(f"{self._checkpoint_name or f'model-{train_id}'}:{alias}")
        except Exception as error:  # no such artifact: the training run had log_model off
            rank_zero_info(f"W&B: the model artifact of run {train_id} was not found ({error})")

    def _prepare_init(self) -> None:
        import wandb
        from wandb.sdk.lib import runid

        if _last_run is not None and wandb.run is _last_run:
            _finish(_last_run, exit_code=1)
        mode, reason = resolve_mode(self._force_offline)
        if mode is not None:
            self._wandb_init["mode"] = mode
        self.offline_reason = reason
        if reason:
            rank_zero_info(f"W&B: {reason}: this run is logged offline; the end says how to upload it.")
        if not self._wandb_init.get("id"):
            # the id is chosen here, not by W&B, so that it can name the run's group too
            self._wandb_init["id"] = self._id = os.environ.get("WANDB_RUN_ID") or runid.generate_id()
        # a training run and the evaluations of its checkpoints share a group (default: its id)
        self._wandb_init.setdefault("group", self._wandb_init["id"])
        self._wandb_init.setdefault("job_type", "train")
        wandb_dir = os.environ.get("WANDB_DIR") or self._save_dir or os.getcwd()
        Path(wandb_dir).mkdir(parents=True, exist_ok=True)
        self._wandb_init["dir"] = wandb_dir

    @property
    def log_dir(self) -> str:
        """The run directory ``<save_dir>/<project>/<run id>`` (where checkpoints go), or ``run_dir``."""
        if self.run_dir is not None:
            return str(self.run_dir)
        return os.path.join(self._save_dir or ".", str(self.name), str(self.version))

    def continue_run(self, ckpt_path: str | os.PathLike[str] | None) -> str | None:
        """Continue the W&B run that wrote ``ckpt_path`` (call before the run starts).

        Returns the run id, or None when there is nothing to continue or the id is set already
        (``id=``, ``$WANDB_RUN_ID`` of a sweep agent).
        """
        if ckpt_path is None or self._experiment is not None or self._id or os.environ.get("WANDB_RUN_ID"):
            return None
        run_id = stored_run_id(ckpt_path)
        if run_id:
            self._id = self._wandb_init["id"] = run_id
            self._wandb_init["resume"] = "allow"
        return run_id

    # --- config ------------------------------------------------------------------------------

    @rank_zero_only
    def log_cli_config(self, config: dict[str, Any], yaml_text: str) -> None:
        """Log the CLI's resolved config as the run config (nested) and as a file of the run."""
        self.cli_config = config
        run = self.experiment
        run.config.update(config, allow_val_change=True)
        if is_live(run):
            path = Path(run.dir) / CONFIG_FILE
            path.write_text(yaml_text)
            run.save(str(path), base_path=run.dir, policy="now")

    @rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        if self.cli_config is not None:
            return  # the model's and data's hyper-parameters are parts of the config logged already
        super().log_hyperparams(params)

    # --- the end -----------------------------------------------------------------------------

    @rank_zero_only
    def finalize(self, status: str) -> None:
        global _last_run
        super().finalize(status)  # success: upload the checkpoints (log_model)
        run = self._experiment
        if status != "success" and run is not None and is_live(run) and not self._finished:
            # an exception or Ctrl-C stopped the trainer: the run ends here, marked as failed
            _finish(run, exit_code=1)
            self._finished = True
            if _last_run is run:
                _last_run = None

    def finish(self) -> str | None:
        """Finish the run (rank 0). Returns where to see it: its URL, or the ``wandb sync`` command
        that uploads an offline run."""
        global _last_run
        run = self._experiment
        if _rank() != 0 or run is None or not is_live(run) or self._finished:
            return None
        where = f"offline run; upload it with: {sync_command(run)}" if run.offline else str(run.url)
        run.finish()
        self._finished = True
        if _last_run is run:
            _last_run = None
        return where

    # --- checkpoints as artifacts ------------------------------------------------------------

    def _scan_and_log_checkpoints(self, checkpoint_callback: ModelCheckpoint) -> None:
        import wandb

        if _rank() != 0:
            return
        cc = checkpoint_callback
        for mtime, path, score, _ in _scan_checkpoints(cc, self._logged_model_time):
            aliases = [
                a for a, p in (("best", cc.best_model_path), ("last", cc.last_model_path)) if p == path
            ]
            value = score.item() if isinstance(score, torch.Tensor) else score
            metadata: dict[str, Any] = {
                "monitor": cc.monitor,
                "score": value,
                **({cc.monitor: value} if cc.monitor else {}),
                **checkpoint_facts(path),
                "original_filename": Path(path).name,
                "config": self.cli_config or {},
            }
            name = self._checkpoint_name or f"model-{self.experiment.id}"
            artifact = wandb.Artifact(name=name, type="model", metadata=metadata)
            artifact.add_file(path, name="model.ckpt", policy=self.add_file_policy)
            self.experiment.log_artifact(artifact, aliases=aliases or None)
            self._logged_model_time[path] = mtime


def _finish(run: Any, exit_code: int) -> None:
    try:
        run.finish(exit_code=exit_code)
    except Exception:  # its W&B service is gone (wandb.teardown()): forget the run instead
        from wandb.sdk.lib import module

        module.unset_globals()


def _rank() -> int:
    return int(getattr(rank_zero_only, "rank", 0))
