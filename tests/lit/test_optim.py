"""param_groups: backbones at pretrained_lr, the rest at the optimizer's lr, each parameter once."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmfuse.lit.optim import param_groups
from tests.lit.tiny_pretrained import TinyTextModule, loader, save_tiny_bert


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> str:
    return save_tiny_bert(tmp_path_factory.mktemp("bert") / "bert")


def test_groups_partition_the_parameters_with_their_learning_rates(bert: str) -> None:
    module = TinyTextModule(bert, freeze=False)
    groups = param_groups(module, pretrained_lr=1e-5)
    assert [g["name"] for g in groups] == ["pretrained", "other"]
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in module.parameters()}  # each once
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in module.encoder.backbone.parameters()}
    optimizer = torch.optim.AdamW(groups, lr=1e-3)
    assert [g["lr"] for g in optimizer.param_groups] == [1e-5, 1e-3]
    # no pretrained_lr: the backbone keeps a group of its own, at the optimizer's lr
    assert [g["lr"] for g in torch.optim.SGD(param_groups(module), lr=0.1).param_groups] == [0.1, 0.1]
    # nothing pretrained: one group
    assert [g["name"] for g in param_groups(nn.Linear(2, 2), 1e-5)] == ["other"]
    with pytest.raises(ValueError, match="pretrained_lr must be >= 0"):
        param_groups(module, -1.0)


def test_a_frozen_backbone_is_in_the_optimizer_but_never_changes(bert: str) -> None:
    module = TinyTextModule(bert, freeze=True)
    groups = param_groups(module, pretrained_lr=1e-2)
    assert all(not p.requires_grad for p in groups[0]["params"])  # included, frozen
    optimizer = torch.optim.AdamW(groups, lr=1e-2, weight_decay=0.1)  # decay would move it if applied
    before = {k: v.clone() for k, v in module.encoder.backbone.state_dict().items()}
    head = module.head.weight.detach().clone()
    ids, target = next(iter(loader()))
    for _ in range(2):
        optimizer.zero_grad()
        module.training_step([ids, target], 0).backward()
        optimizer.step()
    for key, value in module.encoder.backbone.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert not any(p in optimizer.state for p in groups[0]["params"])  # no Adam state either
    assert not torch.equal(module.head.weight, head)
