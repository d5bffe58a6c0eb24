"""UnfreezeEncoders: frozen until epoch N, then fine-tuned (with an optional warm-up), in one process and
under 2-process DDP on the CPU, where the unfrozen backbone must stay identical on both ranks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from mmfuse.lit.finetuning import UnfreezeEncoders
from tests.lit.tiny_pretrained import TinyTextModule, loader, save_tiny_bert

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> str:
    return save_tiny_bert(tmp_path_factory.mktemp("bert") / "bert")


class Record(pl.Callback):
    """Backbone weights after each epoch, and the pretrained group's lr as each optimizer step used it."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []
        self.used_lr: list[float] = []
        self.lr_after: list[float] = []
        self.backbone_training: list[bool] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.backbone_training.append(pl_module.encoder.backbone.training)
        if trainer.current_epoch == 1:  # after UnfreezeEncoders registered its hooks: sees the scaled lr
            opt = trainer.optimizers[0]
            opt.register_step_pre_hook(lambda o, a, k: self.used_lr.append(o.param_groups[0]["lr"]))
            opt.register_step_post_hook(lambda o, a, k: self.lr_after.append(o.param_groups[0]["lr"]))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.states.append({k: v.clone() for k, v in pl_module.encoder.backbone.state_dict().items()})


def _trainer(callbacks: list[pl.Callback], epochs: int = 2) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu", max_epochs=epochs, callbacks=callbacks, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False,
    )  # fmt: skip


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_frozen_until_the_epoch_then_fine_tuned_with_warmup(bert: str) -> None:
    module = TinyTextModule(bert, freeze=True, pretrained_lr=0.02)
    initial = {k: v.clone() for k, v in module.encoder.backbone.state_dict().items()}
    record = Record()
    unfreeze = UnfreezeEncoders(unfreeze_at_epoch=1, warmup_steps=3)
    _trainer([unfreeze, record], epochs=3).fit(module, train_dataloaders=loader(n=16, batch_size=4))
    assert _equal(record.states[0], initial)  # epoch 0: frozen
    assert not _equal(record.states[1], initial) and not _equal(record.states[2], record.states[1])
    assert not module.encoder.freeze and all(p.requires_grad for p in module.encoder.backbone.parameters())
    assert record.backbone_training == [False, True, True]  # a frozen backbone stays in eval mode
    # 4 steps per epoch; warm-up over the first 3 steps after unfreezing: 1/3, 2/3, then all of it
    assert record.used_lr == pytest.approx([0.02 / 3, 0.04 / 3, 0.02, 0.02] + [0.02] * 4)
    assert record.lr_after == pytest.approx([0.02] * 8)  # schedulers never see the scaled value
    assert unfreeze.state_dict() == {"unfrozen": True, "warmup_done": 3}


def test_backbones_missing_from_the_optimizer_or_unknown_modalities_are_errors(bert: str) -> None:
    class OnlyTrainable(TinyTextModule):
        def configure_optimizers(self) -> Any:  # the usual recipe, which leaves frozen parameters out
            return torch.optim.AdamW([p for p in self.parameters() if p.requires_grad])

    with pytest.raises(ValueError, match=r"backbones of \['encoder'\] are not in the optimizer"):
        _trainer([UnfreezeEncoders(unfreeze_at_epoch=0)]).fit(OnlyTrainable(bert), train_dataloaders=loader())
    with pytest.raises(ValueError, match=r"modalities \['image'\] have no frozen Hugging Face encoder"):
        _trainer([UnfreezeEncoders(modalities=["image"])]).fit(
            TinyTextModule(bert), train_dataloaders=loader()
        )


def _ddp(bert: str, out: Path, *extra: str) -> list[dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    script = ROOT / "tests" / "lit" / "finetuning_ddp_script.py"
    subprocess.run(
        [sys.executable, str(script), bert, str(out), *extra], check=True, env=env, cwd=out, timeout=300
    )
    return [torch.load(out / f"rank{r}.pt") for r in (0, 1)]


def test_ddp_unfrozen_backbone_stays_identical_on_both_ranks(bert: str, tmp_path: Path) -> None:
    ranks = _ddp(bert, tmp_path)
    for rank in ranks:
        assert _equal(rank["epochs"][0], rank["initial"])  # frozen in epoch 0
        assert not _equal(rank["epochs"][1], rank["initial"])  # trained in epoch 1
    assert _equal(ranks[0]["epochs"][1], ranks[1]["epochs"][1])  # gradients averaged over the ranks


@pytest.mark.slow  # a second 2-process run (~15 s): shows that the test above has teeth
def test_ddp_without_rewrapping_the_ranks_drift_apart(bert: str, tmp_path: Path) -> None:
    # what Lightning's BackboneFinetuning does (requires_grad only): each rank trains on its own shard
    naive = _ddp(bert, tmp_path, "naive")
    assert _equal(naive[0]["epochs"][0], naive[1]["epochs"][0])
    assert not _equal(naive[0]["epochs"][1], naive[1]["epochs"][1])
