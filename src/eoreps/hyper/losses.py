"""Losses of hyper-representation learning.

``L = gamma * NT-Xent(projections of the two views) + (1 - gamma) * MSE(reconstruction)``

* ``gamma = 0``: autoencoder only; ``gamma = 1``: contrastive only; the paper uses ``gamma = 0.1`` and
  temperature 0.1.
* NT-Xent is lightly's :class:`lightly.loss.NTXentLoss` (SimCLR's normalised temperature-scaled cross
  entropy over the 2N views of a batch, in-batch negatives).
* The reconstruction error is the mean squared error over the real (unpadded) token entries of both
  views.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from lightly.loss import NTXentLoss
from torch import nn

from eoreps.errors import ConfigError


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``(pred - target)^2`` over entries where ``mask`` (broadcast to pred) is True."""
    m = mask.to(pred.dtype).expand_as(pred)
    return ((pred.float() - target.float()) ** 2 * m).sum() / m.sum().clamp_min(1.0)


@dataclass
class LossParts:
    """The total loss and its two terms (for logging)."""

    total: torch.Tensor
    contrastive: torch.Tensor
    reconstruction: torch.Tensor


class HyperLoss(nn.Module):
    """``gamma * NT-Xent(p1, p2) + (1 - gamma) * masked MSE(reconstructions, targets)``."""

    def __init__(self, gamma: float = 0.1, temperature: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= gamma <= 1.0:
            raise ConfigError(
                f"gamma={gamma} must lie in [0, 1] (0 = autoencoder only, 1 = contrastive only)"
            )
        if temperature <= 0:
            raise ConfigError(f"temperature={temperature} must be positive")
        self.gamma, self.temperature = float(gamma), float(temperature)
        self.ntxent = NTXentLoss(temperature=temperature)

    def forward(
        self,
        p1: torch.Tensor,
        p2: torch.Tensor,
        r1: torch.Tensor,
        t1: torch.Tensor,
        r2: torch.Tensor,
        t2: torch.Tensor,
        mask: torch.Tensor,
    ) -> LossParts:
        """``p*``: (B, P) projections; ``r*``/``t*``: (B, T, W) reconstructions/targets; ``mask`` (T, W)."""
        c = self.ntxent(p1.float(), p2.float()) if self.gamma > 0 else p1.new_zeros((), dtype=torch.float32)
        m = masked_mse(torch.cat([r1, r2]), torch.cat([t1, t2]), mask)
        return LossParts(self.gamma * c + (1.0 - self.gamma) * m, c.detach(), m.detach())
