"""Process-group helpers that are no-ops in a single process (no collective ever fails there).

``gather(x)`` concatenates ``x`` from every process **with gradient**: the backward pass sums the
gradients that all processes computed for this process' rows (lightly's ``GatherLayer``, an
all-reduce, which the gloo backend supports; ``torch.distributed.nn.all_gather`` needs all-to-all).
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True inside an initialised process group with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of processes (1 outside a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """Rank of this process (0 outside a process group)."""
    return dist.get_rank() if is_distributed() else 0


def gather(x: torch.Tensor) -> torch.Tensor:
    """``(n, ...)`` on each of ``W`` processes -> ``(W * n, ...)``, rank-ordered, differentiable.

    Every process must pass the same ``n``. In a single process ``x`` is returned unchanged.
    """
    if not is_distributed():
        return x
    from lightly.utils.dist import gather as lightly_gather

    return torch.cat(lightly_gather(x.contiguous()), dim=0)


def all_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over processes (no gradient); ``x`` itself in a single process."""
    if not is_distributed():
        return x
    y = x.detach().clone()
    dist.all_reduce(y)
    return y / dist.get_world_size()
