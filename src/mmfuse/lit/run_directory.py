"""The run directory: the one folder per run that holds its checkpoints, config and results.

- :func:`run_directory` says where a trainer's run writes.
- :func:`find_last_checkpoint` resolves ``--ckpt_path last`` to the ``last.ckpt`` of *this*
  experiment: among the runs under ``default_root_dir``, those whose saved ``config.yaml`` has the
  same encoders and fuser.
- :func:`place_logger` points a logger at an existing run directory (a resumed fit continues its
  own folder and logger run) or at an evaluation folder.
- :func:`evaluation_directory`: ``test``, ``validate``, ``predict`` and ``ablate`` of a checkpoint
  write under the checkpoint's run, in ``<run>/eval/<time>-<command>/``.
"""

from __future__ import annotations

import csv
import io
import os
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger

#: the file every run directory holds its resolved config in (written by ``RunConfigSaver``)
CONFIG_FILE = "config.yaml"
#: where evaluations of a run's checkpoints go, inside the run directory
EVAL_DIR = "eval"


def run_directory(trainer: pl.Trainer) -> Path:
    """``<save_dir>/<name>/<version>``, the folder whose ``checkpoints/`` ModelCheckpoint writes to.

    The same rule for every logger, so checkpoints, ``config.yaml``, ``test_metrics.json`` and
    ``predictions.csv`` always share one folder under ``trainer.default_root_dir``:

    - CSV / TensorBoard: ``<root>/lightning_logs/version_N`` (their ``log_dir``);
    - Weights & Biases: ``<root>/<project>/<run id>`` (Lightning's ``trainer.log_dir`` is only
      ``<root>`` there, shared by every run);
    - a logger placed by :func:`place_logger`: the folder it was placed in.

    Without a logger it is ``default_root_dir``. Under W&B the run id exists on rank 0 only: call
    this on rank 0.
    """
    logger = trainer.logger
    if logger is None:
        return Path(trainer.default_root_dir)
    placed = getattr(logger, "run_dir", None)
    if placed is not None:
        return Path(placed)
    save_dir = logger.save_dir if logger.save_dir is not None else trainer.default_root_dir
    version = logger.version
    version = version if isinstance(version, str) else f"version_{version}"
    return Path(os.path.join(save_dir, str(logger.name), version))


def run_of_checkpoint(ckpt_path: str | os.PathLike[str]) -> Path | None:
    """The run directory a local checkpoint belongs to (``<run>/checkpoints/x.ckpt``), or None."""
    if "://" in str(ckpt_path):
        return None
    path = Path(ckpt_path)
    run = path.parent.parent
    return run if path.parent.name == "checkpoints" and (run / CONFIG_FILE).is_file() else None


def model_signature(config: Mapping[str, Any]) -> dict[str, Any]:
    """What makes two runs the same experiment for ``--ckpt_path last``: the encoders (name ->
    class) and the fuser's class, from a config's ``model`` section."""
    model = config.get("model") or {}
    encoders = model.get("encoders") or {}
    fusion = model.get("fusion") or {}
    return {
        "encoders": {name: (e or {}).get("class_path") for name, e in sorted(encoders.items())},
        "fusion": fusion.get("class_path"),
    }


def find_last_checkpoint(root: str | Path, config: Mapping[str, Any] | None = None) -> Path:
    """The ``last.ckpt`` of the run under ``root`` whose saved config matches ``config``'s model.

    Raises FileNotFoundError when no run matches, and ValueError when several do (each listed, with
    its epoch): ``--ckpt_path`` then takes the path of the one to resume.
    """
    found = sorted(p for p in Path(root).glob("**/checkpoints/last.ckpt") if p.is_file())
    if config is None:
        matching = found
    else:
        wanted = model_signature(config)
        matching = [p for p in found if _saved_signature(p) == wanted]
    if len(matching) == 1:
        return matching[0]
    if not matching:
        others = "".join(f"\n  {_describe(p)}" for p in found)
        why = (
            f"none of the {len(found)} runs there has the same encoders and fuser as this config:{others}"
            if found
            else "there are no runs there"
        )
        raise FileNotFoundError(f"--ckpt_path last: no last.ckpt of this experiment under {root}: {why}")
    listed = "".join(f"\n  {_describe(p)}" for p in matching)
    raise ValueError(
        f"--ckpt_path last: {len(matching)} runs under {root} have this config's encoders and fuser; "
        f"pass the one to resume as --ckpt_path PATH:{listed}"
    )


def _saved_signature(last: Path) -> dict[str, Any] | None:
    try:
        saved = yaml.safe_load((last.parent.parent / CONFIG_FILE).read_text())
    except (OSError, yaml.YAMLError):
        return None
    return model_signature(saved) if isinstance(saved, dict) else None


def _describe(last: Path) -> str:
    facts = checkpoint_facts(last)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(last.stat().st_mtime))
    epoch = f"epoch {facts['epoch']}, step {facts['global_step']}" if facts else "unreadable"
    return f"{last}  ({epoch}, written {when})"


def checkpoint_facts(path: str | os.PathLike[str]) -> dict[str, int]:
    """``{"epoch": ..., "global_step": ...}`` of a local checkpoint file (empty if it cannot be read)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return {"epoch": int(ckpt["epoch"]), "global_step": int(ckpt["global_step"])}
    except Exception:
        return {}


def evaluation_directory(ckpt_path: str | None, root: str | Path, command: str) -> Path:
    """``<run>/eval/<time>-<command>`` for a checkpoint of a run, else ``<root>/eval/<time>-<command>``.

    Only named here; nothing is created until a result is written.
    """
    run = run_of_checkpoint(ckpt_path) if ckpt_path else None
    base = (run or Path(root)) / EVAL_DIR
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder, n = base / f"{stamp}-{command}", 1
    while folder.exists():  # two evaluations within a second
        n += 1
        folder = base / f"{stamp}-{command}-{n}"
    return folder


def place_logger(logger: Logger, run_dir: Path, resume_step: int | None = None) -> None:
    """Make ``logger`` write into ``run_dir`` (call before its run starts).

    ``resume_step``: a resumed fit; the CSV logger keeps the metrics of the steps up to it (those
    after it are trained again) instead of starting ``metrics.csv`` afresh.
    """
    if isinstance(logger, CSVLogger | TensorBoardLogger):
        for attr in ("_save_dir", "_root_dir"):
            if hasattr(logger, attr):
                setattr(logger, attr, str(run_dir.parent))
        logger._name = ""
        logger._version = run_dir.name
    else:
        logger.run_dir = run_dir  # type: ignore[attr-defined]  # mmfuse's WandbLogger reads it
    if isinstance(logger, CSVLogger) and resume_step is not None:
        _keep_csv_metrics(logger, resume_step)


def _keep_csv_metrics(logger: CSVLogger, resume_step: int) -> None:
    path = Path(logger.log_dir) / "metrics.csv"
    if not path.is_file():
        return
    with path.open(newline="") as f:
        kept = [r for r in csv.DictReader(f) if not r.get("step") or int(float(r["step"])) <= resume_step]
    with warnings.catch_warnings():
        # "exists and is not empty ... will be deleted": the rows are written back just below
        warnings.simplefilter("ignore")
        writer = logger.experiment
    if kept:
        keys = sorted(kept[0])  # the writer's own order; it widens the header when new keys come
        out = io.StringIO()
        table = csv.DictWriter(out, fieldnames=keys)
        table.writeheader()
        table.writerows(kept)
        Path(writer.metrics_file_path).write_text(out.getvalue())
        writer.metrics_keys = keys
