"""ContrastiveLoss under real DDP (2 gloo processes): the same loss and gradients as 1 process on the
whole batch. A file of its own, so that the spawned processes import nothing but torch and the loss."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn

from mmfuse.models.losses import ContrastiveLoss

MODALITIES = ("audio", "image", "text")


def _global_batch() -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """8 samples; some miss a modality (they must be excluded on whichever rank they land)."""
    g = torch.Generator().manual_seed(0)
    x = {m: torch.randn(8, 6, generator=g, dtype=torch.float64) for m in MODALITIES}
    present = {m: torch.ones(8, dtype=torch.bool) for m in MODALITIES}
    present["text"][[2, 6]] = False
    present["audio"][[0, 5]] = False
    return x, present


def _run(x: dict[str, Tensor], present: dict[str, Tensor], gather: bool) -> tuple[Tensor, list[Tensor]]:
    """One step of a tiny model (a projection per modality) + the loss; its loss and parameter grads."""
    torch.manual_seed(1)  # the same initial weights on every rank, as DDP guarantees
    proj = nn.ModuleDict({m: nn.Linear(6, 4).double() for m in MODALITIES})
    loss_fn = ContrastiveLoss(temperature=0.2, gather=gather)
    loss = loss_fn({m: proj[m](x[m]) for m in MODALITIES}, present).loss
    loss.backward()
    params = [*proj.parameters(), loss_fn.logit_scale]
    return loss.detach(), [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]


def _worker(rank: int, world: int, port: int) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        x, present = _global_batch()
        ref_loss, ref_grads = _run(x, present, gather=False)  # 1 process, the whole batch
        for sizes in ((4, 4), (5, 3)):  # halves, and uneven local batches
            start, stop = sum(sizes[:rank]), sum(sizes[: rank + 1])
            local = {m: v[start:stop] for m, v in x.items()}
            local_present = {m: v[start:stop] for m, v in present.items()}
            loss, grads = _run(local, local_present, gather=True)
            # what DDP does to the gradients: average them over the ranks
            for g in grads:
                dist.all_reduce(g)
                g /= world
            mean_loss = loss.clone()
            dist.all_reduce(mean_loss)
            mean_loss /= world
            torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=1e-12, msg=f"{sizes}: local loss")
            torch.testing.assert_close(mean_loss, ref_loss, rtol=1e-12, atol=1e-12)
            for i, (g, ref) in enumerate(zip(grads, ref_grads, strict=True)):
                torch.testing.assert_close(g, ref, rtol=1e-10, atol=1e-12, msg=f"{sizes}: gradient {i}")
        # without gather each rank contrasts its own samples only: a different (local) loss
        local_only, _ = _run({m: v[:4] for m, v in x.items()}, {m: v[:4] for m, v in present.items()}, False)
        assert not torch.allclose(local_only, ref_loss)
        # both ranks done before either tears gloo down: a rank that destroys its process group while
        # the other still talks to it can abort ("terminate called without an active exception").
        # Not in `finally`: after a failed assert the other rank waits in another collective
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ddp_loss_and_gradients_equal_one_process() -> None:
    assert all(g.abs().sum() > 0 for g in _run(*_global_batch(), gather=False)[1])  # the check has teeth
    mp.spawn(_worker, args=(2, _free_port()), nprocs=2, join=True)
