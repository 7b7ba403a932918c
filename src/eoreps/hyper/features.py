"""Feature sets that properties of zoo models are predicted from.

* ``W``: the raw flat weights (N, D);
* ``s(W)``: per tensor of the parameter order (each layer's weights and, separately, its biases) the
  mean, variance and the 1/25/50/75/99 percentiles: (N, 7 * number of tensors);
* ``learned``: the hyper-representation's embedding (N, latent).
"""

from __future__ import annotations

import math

import torch

QUANTILES = (0.01, 0.25, 0.5, 0.75, 0.99)
STAT_NAMES = ("mean", "var", "p01", "p25", "p50", "p75", "p99")


def weight_statistics(weights: torch.Tensor, param_order: list[tuple[str, tuple[int, ...]]]) -> torch.Tensor:
    """(N, D) weights -> (N, 7 * len(param_order)) statistics s(W) (see module docstring)."""
    feats, o = [], 0
    q = torch.tensor(QUANTILES, dtype=torch.float64)
    for _, shape in param_order:
        n = math.prod(shape)
        block = weights[:, o:o + n].double()
        o += n
        var = block.var(dim=1, unbiased=False) if n > 1 else torch.zeros(len(block), dtype=torch.float64)
        feats += [block.mean(1, keepdim=True), var[:, None], torch.quantile(block, q, dim=1).T]
    return torch.cat(feats, dim=1).float()


def statistic_names(param_order: list[tuple[str, tuple[int, ...]]]) -> list[str]:
    """Column names of :func:`weight_statistics`."""
    return [f"{k}.{s}" for k, _ in param_order for s in STAT_NAMES]
