"""TabularDataModule and TabularMLP: decoding, errors, train-split standardisation in checkpoints, T = 1."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmfuse.data.manifest.errors import SampleError
from mmfuse.data.modalities.tabular import TabularDataModule
from mmfuse.models.encoders.tabular_mlp import TabularMLP


def test_cells_decode_and_standardise_with_train_statistics(tmp_path: Path) -> None:
    dm = TabularDataModule(column="vitals", num_features=2)
    dm.fit(["1;10", "3 30", " 5 ; 50 ", "not numbers"])  # a bad cell is left out of the statistics
    assert torch.allclose(dm.mean, torch.tensor([3.0, 30.0]))
    assert torch.allclose(dm.std, torch.tensor([1.632993, 16.32993]), atol=1e-5)  # population std
    x = dm.load("3;46.329932", tmp_path, train=True)["features"]
    assert torch.allclose(x, torch.tensor([0.0, 1.0]), atol=1e-5)

    restored = TabularDataModule(column="vitals", num_features=2)
    restored.load_state_dict(dm.state_dict())  # the statistics travel with the checkpoint
    assert torch.equal(
        restored.load("1;10", tmp_path, False)["features"], dm.load("1;10", tmp_path, False)["features"]
    )


def test_constant_feature_is_centred_not_divided_by_zero(tmp_path: Path) -> None:
    dm = TabularDataModule(num_features=2)
    dm.fit(["1;7", "2;7", "3;7"])
    assert torch.equal(dm.load("2;7", tmp_path, True)["features"], torch.tensor([0.0, 0.0]))


@pytest.mark.parametrize(
    ("cell", "reason"),
    [("1;x", "not a list of numbers"), ("1;2;3", "3 numbers where num_features=2"), ("1;nan", "non-finite")],
)
def test_bad_cells_say_what_is_wrong(tmp_path: Path, cell: str, reason: str) -> None:
    with pytest.raises(SampleError, match=reason):
        TabularDataModule(num_features=2).load(cell, tmp_path, train=False)


def test_collate_and_encoder_give_one_token_per_sample(tmp_path: Path) -> None:
    dm = TabularDataModule(num_features=3, standardize=False)
    batch = dm.collate([dm.load("1 2 3", tmp_path, False), None])
    assert torch.equal(batch["features"], torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]))
    assert dm.encoder_requirements() == {"in_features": 3}
    encoder = TabularMLP(in_features=3, d_model=8, hidden=16, num_layers=2)
    out = encoder(**batch)
    assert out.tokens.shape == (2, 1, 8) and out.mask.shape == (2, 1) and out.mask.all()
    out.tokens.sum().backward()
    assert all(p.grad is not None for p in encoder.parameters())
    with pytest.raises(ValueError, match=r"expects features \(B, 3\)"):
        encoder(torch.zeros(2, 4))
