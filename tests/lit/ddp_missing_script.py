"""Run by tests/lit/test_missing_modalities.py: a 2-process CPU DDP fit and test on partial data.

python ddp_missing_script.py MANIFEST OUT_DIR

Writes OUT_DIR/report.json from rank 0. Lightning's ``ddp`` strategy starts rank 1 by running this
script again, so it must be a plain script (tests/ reachable through PYTHONPATH).
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.loggers import CSVLogger

from mmfuse.data import ManifestSource, MultimodalDataModule
from mmfuse.data.selection import SKIPPED_CSV
from tests.data.messy import modalities, tiny_module


def main() -> None:
    manifest, out = sys.argv[1], Path(sys.argv[2])
    pl.seed_everything(0)
    data = MultimodalDataModule(
        ManifestSource(manifest), modalities(), batch_size=2, num_workers=1, on_bad_sample="skip"
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",  # find_unused_parameters stays False
        max_epochs=2,
        default_root_dir=out,
        logger=CSVLogger(out, name="logs"),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    module = tiny_module("cross", modality_dropout=0.3)
    trainer.fit(module, datamodule=data)
    [metrics] = trainer.test(module, datamodule=data, verbose=False)
    log_dir = Path(trainer.log_dir or out)  # every process: it is a collective call under DDP
    if trainer.is_global_zero:
        with (log_dir / SKIPPED_CSV).open() as f:
            skipped = [[r["split"], r["row"], r["id"], r["column"]] for r in csv.DictReader(f)]
        ddp = trainer.strategy
        report = {
            "world_size": trainer.world_size,
            "find_unused_parameters": getattr(ddp, "_ddp_kwargs", {}).get("find_unused_parameters", False),
            "skipped": skipped,
            "trained_steps": trainer.global_step,
            "test_acc_finite": math.isfinite(metrics["test/acc"]),
        }
        (out / "report.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
