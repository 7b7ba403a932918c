"""Run by test_ddp.py in two gloo processes: the loss of each method on this rank's half of a batch."""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist

from eoreps.data.stats import BandStats


def build(name: str) -> torch.nn.Module:
    """The same method (same seed, same weights) in every process, in eval mode (BN uses running stats,
    so only the loss couples the samples of a batch)."""
    from eoreps.ssl.methods import get_method

    torch.manual_seed(0)
    stats = BandStats(mean={"s2": (0.0,) * 12, "s1": (0.0,) * 2}, std={"s2": (1.0,) * 12, "s1": (1.0,) * 2})
    m = get_method(name)(modalities=["s2", "s1"], in_chans={"s2": 12, "s1": 2}, stats=stats.to_dict(),
                         backbone="cnn-tiny", image_size=(16, 16), max_steps=10)
    return m.eval()


def views(name: str, lo: int = 0, hi: int = 8) -> object:
    """A fixed global batch of 8 (its rows lo:hi)."""
    g = torch.Generator().manual_seed(1)
    s2, s1 = torch.randn(8, 12, 16, 16, generator=g), torch.randn(8, 2, 16, 16, generator=g)
    if name == "simclr":
        x = torch.cat([s2, s1], 1)
        return x[lo:hi], x.flip(-1)[lo:hi]
    return {"s2": s2[lo:hi], "s1": s1[lo:hi]}


def loss_and_grads(name: str, lo: int, hi: int) -> tuple[torch.Tensor, int, torch.Tensor]:
    """Loss, candidates per softmax and flattened parameter gradients on rows lo:hi."""
    m = build(name)
    loss, logs = m.loss(views(name, lo, hi))
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None])
    return loss.detach(), int(logs["num_candidates"]), grads


def main(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    n = 8 // world
    results = {}
    for name in ("simclr", "multimodal"):
        loss, cands, grads = loss_and_grads(name, rank * n, (rank + 1) * n)
        dist.all_reduce(loss)  # global loss = mean of the local losses (equal local batches)
        dist.all_reduce(grads)  # what DDP does to gradients: average over processes
        results[name] = {"loss": loss / world, "num_candidates": cands, "grads": grads / world}
    if rank == 0:
        torch.save(results, out)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
