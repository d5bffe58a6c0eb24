"""Run by tests/lit/test_resume.py in a subprocess: a small fit that may SIGKILL itself mid-epoch.

python resume_script.py DATA_ROOT RUN_DIR OUT.pt [--kill-at STEP] [--resume] [--shards SOURCE_YAML]
"""

from __future__ import annotations

import argparse
import os
import signal

import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.callbacks import ModelCheckpoint

from mmfuse.data import (
    AudioDataModule,
    ImageDataModule,
    MultimodalDataModule,
    SyntheticSource,
    TextDataModule,
)
from mmfuse.data.manifest.tasks import TaskSpec
from mmfuse.data.sources.shards import ShardSource
from mmfuse.lit.module import MultimodalModule
from mmfuse.lit.resume import AtomicCheckpointIO, RandomState
from mmfuse.models.encoders import AudioCNN, ImageCNN, TextTransformer
from mmfuse.models.fusion import CrossModalAttentionFusion


class KillAtStep(pl.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no final checkpoint


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_root")
    parser.add_argument("run_dir")
    parser.add_argument("out")
    parser.add_argument("--kill-at", type=int)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--shards", help="read the data from these shards (the source.yaml of `pack`)")
    args = parser.parse_args()

    pl.seed_everything(0)
    names = ["audio", "image", "text"]
    if args.shards is None:
        source = SyntheticSource(root=args.data_root, num_samples=160, image_size=24)
    else:
        with open(args.shards) as f:
            source = ShardSource(**yaml.safe_load(f)["init_args"])
    data = MultimodalDataModule(
        source,
        {
            "audio": AudioDataModule(sample_rate=8000, n_fft=256, hop_length=256, n_mels=16),
            "image": ImageDataModule(
                size=16, hflip=True, crop_padding=2, brightness=0.2, contrast=0.2
            ),  # must replay too
            "text": TextDataModule(vocab_size=64),
        },
        batch_size=16,
        num_workers=args.workers,
    )
    model = MultimodalModule(
        {
            "audio": AudioCNN(n_mels=16, d_model=16, channels=[16], dropout=0.2),
            "image": ImageCNN(d_model=16, channels=[8], dropout=0.2),
            "text": TextTransformer(vocab_size=64, d_model=16, num_layers=1, num_heads=2, dropout=0.2),
        },
        CrossModalAttentionFusion(names, d_model=16, num_heads=2, dropout=0.2),
        tasks=[TaskSpec(name="label", kind="multiclass", names=["zero", "one", "two", "three"])],
        head_dropout=0.2,
    )
    callbacks: list[pl.Callback] = [
        ModelCheckpoint(
            dirpath=os.path.join(args.run_dir, "ckpt"), every_n_train_steps=3, save_last=True, save_top_k=0
        ),
        RandomState(),
    ]
    if args.kill_at is not None:
        callbacks.append(KillAtStep(args.kill_at))
    trainer = pl.Trainer(
        default_root_dir=args.run_dir,
        accelerator="cpu",
        max_epochs=2,
        logger=False,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=1,
    )
    ckpt = os.path.join(args.run_dir, "ckpt", "last.ckpt") if args.resume else None
    trainer.fit(model, datamodule=data, ckpt_path=ckpt)
    torch.save(model.state_dict(), args.out)


if __name__ == "__main__":
    main()
