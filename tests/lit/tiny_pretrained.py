"""A tiny random BERT saved as a pretrained folder, and a small LightningModule around HFTextEncoder
built the way MultimodalModule builds its optimizer (param_groups): for the optimizer-group and
unfreezing tests, single process and DDP (tests/lit/finetuning_ddp_script.py imports it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from mmfuse.lit.optim import param_groups
from mmfuse.models.encoders.hf_text import HFTextEncoder

VOCAB = 40


def save_tiny_bert(path: Path) -> str:
    from transformers import AutoConfig, AutoModel

    torch.manual_seed(0)
    config = AutoConfig.for_model(
        "bert", vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    AutoModel.from_config(config).save_pretrained(path)
    return str(path)


class TinyTextModule(pl.LightningModule):
    """HFTextEncoder (frozen or not) -> mean over tokens -> linear head; AdamW over param_groups."""

    def __init__(self, path: str, freeze: bool = True, lr: float = 1e-2, pretrained_lr: float = 1e-2) -> None:
        super().__init__()
        self.encoder = HFTextEncoder(path, d_model=8, freeze=freeze)
        self.head = nn.Linear(8, 2)
        self.lr, self.pretrained_lr = lr, pretrained_lr

    def training_step(self, batch: list[Tensor], batch_idx: int) -> Tensor:
        ids, target = batch
        tokens = self.encoder(ids, torch.ones_like(ids, dtype=torch.bool)).tokens  # (B, L, 8)
        return nn.functional.cross_entropy(self.head(tokens.mean(dim=1)), target)

    def configure_optimizers(self) -> Any:
        return torch.optim.AdamW(param_groups(self, self.pretrained_lr), lr=self.lr)


def loader(n: int = 16, batch_size: int = 4) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, VOCAB, (n, 6), generator=g)
    return DataLoader(TensorDataset(ids, (ids[:, 0] % 2).long()), batch_size=batch_size)
