"""Save the CLI's resolved config in the run directory and log it, once and whole, to W&B."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import yaml
from pytorch_lightning.cli import SaveConfigCallback

from mmfuse.lit.run_directory import run_directory
from mmfuse.lit.wandb.logger import WandbLogger


class RunConfigSaver(SaveConfigCallback):
    """Writes ``config.yaml`` to the run directory and logs the config to every mmfuse W&B logger.

    - The file goes to :func:`~mmfuse.lit.run_directory.run_directory`, the folder of this run's
      checkpoints. Lightning's own callback writes to ``trainer.log_dir``, which under W&B is the
      root folder shared by every run (a second run would stop there).
    - W&B gets the config as nested keys (``model.fusion.init_args.num_heads``), plus the YAML as
      a file of the run (``lightning_config.yaml``). The model's and data's hyper-parameters, which
      repeat parts of it, are then not logged a second time.
    - Once per process: ``fit`` followed by ``test`` logs it once.
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        if trainer.is_global_zero:
            folder = run_directory(trainer)
            folder.mkdir(parents=True, exist_ok=True)
            # the folder is this run's own (a resumed run reuses it): overwriting is right
            self.parser.save(
                self.config,
                str(folder / self.config_filename),
                skip_none=False,
                overwrite=True,
                multifile=self.multifile,
            )
            self.save_config(trainer, pl_module, stage)
        self.already_saved = True

    def save_config(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if not loggers:
            return
        text = self.parser.dump(self.config, skip_none=False)
        config: dict[str, Any] = yaml.safe_load(text)
        for logger in loggers:
            logger.log_cli_config(config, text)
