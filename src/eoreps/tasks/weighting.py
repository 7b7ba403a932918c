"""Task-weighting strategies for multi-task learning.

A strategy turns per-task losses ``{task: scalar}`` into one training loss and reports the weights it
used. Hooks: ``on_epoch_end(mean_losses)`` (DWA) and ``after_optimizer_step()`` (GradNorm).

* :class:`FixedWeighting` -- ``L = sum_k w_k L_k`` with given weights.
* :class:`UncertaintyWeighting` -- Kendall, Gal & Cipolla (CVPR 2018): a learned log-variance
  ``s_k = log sigma_k^2`` per task; ``L = sum_k c_k exp(-s_k) L_k + s_k / 2`` with ``c_k = 1/2`` for
  regression (Gaussian likelihood) and ``c_k = 1`` for classification (softmax likelihood). For a fixed
  ``L_k`` the optimum is ``exp(-s_k) = 1 / (2 c_k L_k)``: the effective weight ``c_k exp(-s_k) = 1 / (2 L_k)``
  falls as the task's loss (its noise) grows.
* :class:`DynamicWeightAverage` -- Liu, Johns & Davison (CVPR 2019):
  ``w_k(t) = K exp(r_k(t-1) / T) / sum_i exp(r_i(t-1) / T)``, ``r_k(t-1) = L_k(t-1) / L_k(t-2)`` from
  epoch-mean losses; ``w_k = 1`` for the first two epochs. A task whose loss falls slowly gets more weight.
* :class:`GradNorm` -- Chen et al. (ICML 2018): learned weights ``w_k`` with
  ``L_grad = sum_k | G_k - mean(G) r_k^alpha |``, ``G_k = || grad_W w_k L_k ||`` on the last shared
  layer ``W``, ``r_k = (L_k / L_k(0)) / mean_i (L_i / L_i(0))``; the target is a constant, ``L_grad`` only
  updates the ``w_k``, and after each step the weights are renormalised to sum to ``K``.

Field libraries (torchmetrics, lightning) have no multi-task weighting; these follow the papers' formulas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from eoreps.errors import ConfigError, unknown_name

WEIGHTINGS = ("fixed", "uncertainty", "dwa", "gradnorm")


class TaskWeighting(nn.Module):
    """Base class. ``forward(losses, shared)`` -> ``(total_loss, {task: weight as float})``."""

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__()
        self.tasks = list(tasks)

    def forward(self, losses: dict[str, torch.Tensor],
                shared: Sequence[torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def on_epoch_end(self, mean_losses: dict[str, float]) -> None:
        """Called with each task's mean training loss at the end of an epoch."""

    def after_optimizer_step(self) -> None:
        """Called after each optimiser step."""


class FixedWeighting(TaskWeighting):
    """``L = sum_k w_k L_k``; weights default to ``1/K`` each."""

    def __init__(self, tasks: Sequence[str], weights: Sequence[float] | None = None) -> None:
        super().__init__(tasks)
        w = list(weights) if weights is not None else [1.0 / len(self.tasks)] * len(self.tasks)
        if len(w) != len(self.tasks) or any(x < 0 for x in w):
            raise ConfigError(
                f"fixed weights {w}: need {len(self.tasks)} non-negative numbers, one per task {self.tasks}"
            )
        self.weights = dict(zip(self.tasks, (float(x) for x in w), strict=True))

    def forward(self, losses, shared=None):
        total = sum(self.weights[k] * losses[k] for k in self.tasks)
        return total, dict(self.weights)


class UncertaintyWeighting(TaskWeighting):
    """Kendall et al. (2018) homoscedastic-uncertainty weighting with learned ``s_k = log sigma_k^2``.

    Args:
        tasks: task names.
        regression: per task, True for a Gaussian (regression) likelihood (factor 1/2), False for a
            softmax/Bernoulli one (factor 1).
    """

    def __init__(self, tasks: Sequence[str], regression: Sequence[bool] | None = None) -> None:
        super().__init__(tasks)
        reg = list(regression) if regression is not None else [False] * len(self.tasks)
        self.register_buffer("factor", torch.tensor([0.5 if r else 1.0 for r in reg]))
        self.log_vars = nn.Parameter(torch.zeros(len(self.tasks)))

    def forward(self, losses, shared=None):
        total = 0.0
        weights = {}
        for i, k in enumerate(self.tasks):
            w = self.factor[i] * torch.exp(-self.log_vars[i])
            total = total + w * losses[k] + 0.5 * self.log_vars[i]
            weights[k] = float(w.detach())
        return total, weights


class DynamicWeightAverage(TaskWeighting):
    """Liu et al. (2019) dynamic weight average with temperature ``T`` (paper: 2)."""

    def __init__(self, tasks: Sequence[str], temperature: float = 2.0) -> None:
        super().__init__(tasks)
        if temperature <= 0:
            raise ConfigError(f"DWA temperature {temperature} must be positive")
        self.temperature = temperature
        self.history: list[dict[str, float]] = []
        self.weights = {k: 1.0 for k in self.tasks}

    def on_epoch_end(self, mean_losses: dict[str, float]) -> None:
        self.history.append({k: float(mean_losses[k]) for k in self.tasks})
        if len(self.history) < 2:
            return
        prev, prev2 = self.history[-1], self.history[-2]
        r = {k: prev[k] / max(prev2[k], 1e-12) for k in self.tasks}
        z = sum(math.exp(r[k] / self.temperature) for k in self.tasks)
        self.weights = {k: len(self.tasks) * math.exp(r[k] / self.temperature) / z for k in self.tasks}

    def forward(self, losses, shared=None):
        return sum(self.weights[k] * losses[k] for k in self.tasks), dict(self.weights)

    def get_extra_state(self):
        return {"history": self.history, "weights": self.weights}

    def set_extra_state(self, state) -> None:
        self.history, self.weights = list(state["history"]), dict(state["weights"])


class GradNorm(TaskWeighting):
    """Chen et al. (2018) GradNorm with asymmetry ``alpha`` (paper: 0.12 to 3; 1.5 is common).

    ``forward`` needs ``shared``: the weight tensor(s) of the last shared layer. It returns
    ``sum_k w_k.detach() L_k + L_grad``: network parameters get gradients from the weighted task
    losses only, the weights ``w_k`` from ``L_grad`` only (``||grad_W L_k||`` enters as a constant, so no
    second-order gradients are needed).
    """

    def __init__(self, tasks: Sequence[str], alpha: float = 1.5) -> None:
        super().__init__(tasks)
        self.alpha = alpha
        self.w = nn.Parameter(torch.ones(len(self.tasks)))
        self.register_buffer("initial", torch.zeros(len(self.tasks)))
        self.register_buffer("has_initial", torch.tensor(False))

    def forward(self, losses, shared=None):
        if shared is None or not len(shared):
            raise ConfigError("GradNorm needs the last shared layer's parameters; pass shared=[...]")
        stacked = torch.stack([losses[k] for k in self.tasks])
        if not torch.is_grad_enabled() or not stacked.requires_grad:  # validation: plain weighted sum
            return (self.w.detach() * stacked).sum(), self._weights()
        if not bool(self.has_initial):
            self.initial.copy_(stacked.detach())
            self.has_initial.fill_(True)
        norms = []
        for k in self.tasks:
            grads = torch.autograd.grad(losses[k], list(shared), retain_graph=True, allow_unused=True)
            sq = sum((g.detach() ** 2).sum() for g in grads if g is not None)
            norms.append(torch.sqrt(torch.as_tensor(sq, dtype=stacked.dtype, device=stacked.device)))
        gnorm = self.w * torch.stack(norms)  # G_k = ||grad_W w_k L_k|| = w_k ||grad_W L_k||
        ratio = stacked.detach() / self.initial.clamp_min(1e-12)
        r = ratio / ratio.mean()
        target = (gnorm.detach().mean() * r ** self.alpha).detach()
        l_grad = (gnorm - target).abs().sum()
        total = (self.w.detach() * stacked).sum() + l_grad
        return total, self._weights()

    def after_optimizer_step(self) -> None:
        with torch.no_grad():
            self.w.clamp_(min=1e-3)
            self.w.mul_(len(self.tasks) / self.w.sum())

    def _weights(self) -> dict[str, float]:
        return {k: float(v) for k, v in zip(self.tasks, self.w.detach(), strict=True)}


def create_weighting(name: str, tasks: Sequence[str], weights: Sequence[float] | None = None,
                     regression: Sequence[bool] | None = None, temperature: float = 2.0,
                     alpha: float = 1.5) -> TaskWeighting:
    """Build a strategy by name: ``fixed`` (with ``weights``), ``uncertainty``, ``dwa``, ``gradnorm``."""
    if name == "fixed":
        return FixedWeighting(tasks, weights)
    if name == "uncertainty":
        return UncertaintyWeighting(tasks, regression)
    if name == "dwa":
        return DynamicWeightAverage(tasks, temperature)
    if name == "gradnorm":
        return GradNorm(tasks, alpha)
    raise unknown_name("task weighting", name, WEIGHTINGS)
