"""Run by tests/lit/test_finetuning.py: a 2-process CPU DDP fit whose frozen backbone is unfrozen at epoch 1.

python finetuning_ddp_script.py BERT_DIR OUT_DIR [naive]

Each rank writes OUT_DIR/rank<r>.pt: the backbone's weights before fit and after each epoch. ``naive``
unfreezes like Lightning's BackboneFinetuning (requires_grad only, the DDP wrapper kept), to show what
goes wrong without re-wrapping. Lightning's ``ddp`` strategy starts rank 1 by running this script again.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytorch_lightning as pl
import torch

from mmfuse.lit.finetuning import UnfreezeEncoders
from tests.lit.tiny_pretrained import TinyTextModule, loader


class NaiveUnfreeze(UnfreezeEncoders):
    def _unfreeze(self, trainer: pl.Trainer) -> None:
        for encoder in self._encoders.values():
            encoder.set_frozen(False)


class Snapshots(pl.Callback):
    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.states.append({k: v.clone() for k, v in pl_module.encoder.backbone.state_dict().items()})


def main() -> None:
    bert, out, naive = sys.argv[1], Path(sys.argv[2]), sys.argv[3:] == ["naive"]
    torch.set_num_threads(1)
    pl.seed_everything(0)
    module = TinyTextModule(bert, freeze=True)
    initial = {k: v.clone() for k, v in module.encoder.backbone.state_dict().items()}
    snapshots = Snapshots()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",  # find_unused_parameters stays False
        max_epochs=2,
        callbacks=[(NaiveUnfreeze if naive else UnfreezeEncoders)(unfreeze_at_epoch=1), snapshots],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(module, train_dataloaders=loader(n=32, batch_size=4))
    torch.save({"initial": initial, "epochs": snapshots.states}, out / f"rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main()
