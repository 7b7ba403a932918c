"""Task-weighting strategies behave as published."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from eoreps.errors import ConfigError
from eoreps.tasks.weighting import (
    DynamicWeightAverage,
    FixedWeighting,
    GradNorm,
    UncertaintyWeighting,
    create_weighting,
)


def test_fixed() -> None:
    w = FixedWeighting(["a", "b", "c"], [0.15, 0.7, 0.15])
    total, weights = w({"a": torch.tensor(1.0), "b": torch.tensor(2.0), "c": torch.tensor(4.0)})
    assert float(total) == pytest.approx(0.15 + 1.4 + 0.6)
    assert FixedWeighting(["a", "b"]).weights == {"a": 0.5, "b": 0.5}
    with pytest.raises(ConfigError, match="one per task"):
        FixedWeighting(["a", "b"], [1.0])


def test_uncertainty_optimum_is_inverse_loss() -> None:
    """For fixed losses the learned weight c exp(-s) tends to 1 / (2 L): the noisier task weighs less."""
    w = UncertaintyWeighting(["clean", "noisy"], regression=[True, True])
    opt = torch.optim.Adam(w.parameters(), lr=0.05)
    losses = {"clean": torch.tensor(0.25), "noisy": torch.tensor(4.0)}
    for _ in range(1500):
        opt.zero_grad()
        total, weights = w(losses)
        total.backward()
        opt.step()
    assert weights["clean"] == pytest.approx(1 / (2 * 0.25), rel=0.02)
    assert weights["noisy"] == pytest.approx(1 / (2 * 4.0), rel=0.02)


def test_uncertainty_weighting_learns_smaller_weight_for_noisier_task() -> None:
    torch.manual_seed(0)
    x = torch.randn(512, 4)
    true = x @ torch.tensor([1.0, -2.0, 0.5, 1.5])
    y = {"clean": true + 0.1 * torch.randn(512), "noisy": true + 2.0 * torch.randn(512)}
    shared = nn.Linear(4, 8)
    heads = nn.ModuleDict({k: nn.Linear(8, 1) for k in y})
    w = UncertaintyWeighting(list(y), regression=[True, True])
    opt = torch.optim.Adam([*shared.parameters(), *heads.parameters(), *w.parameters()], lr=0.02)
    for _ in range(600):
        opt.zero_grad()
        z = shared(x)
        losses = {k: ((heads[k](z).squeeze(-1) - y[k]) ** 2).mean() for k in y}
        total, weights = w(losses)
        total.backward()
        opt.step()
    assert weights["noisy"] < 0.1 * weights["clean"]


def test_dwa_matches_formula_and_favours_slow_task() -> None:
    dwa = DynamicWeightAverage(["fast", "slow"], temperature=2.0)
    assert dwa.weights == {"fast": 1.0, "slow": 1.0}
    dwa.on_epoch_end({"fast": 1.0, "slow": 1.0})
    assert dwa.weights == {"fast": 1.0, "slow": 1.0}  # first two epochs: equal weights
    dwa.on_epoch_end({"fast": 0.5, "slow": 0.95})
    r_fast, r_slow = 0.5, 0.95
    e_f, e_s = math.exp(r_fast / 2), math.exp(r_slow / 2)
    assert dwa.weights["fast"] == pytest.approx(2 * e_f / (e_f + e_s))
    assert dwa.weights["slow"] == pytest.approx(2 * e_s / (e_f + e_s))
    assert dwa.weights["slow"] > dwa.weights["fast"]
    total, _ = dwa({"fast": torch.tensor(1.0), "slow": torch.tensor(1.0)})
    assert float(total) == pytest.approx(2.0)
    state = dwa.state_dict()
    dwa2 = DynamicWeightAverage(["fast", "slow"])
    dwa2.load_state_dict(state)
    assert dwa2.weights == dwa.weights


def _gradnorm_fixed_point(scale_a: float, scale_b: float, later_a: float = 1.0, steps: int = 250) -> float:
    """Train only GradNorm's weights on a frozen network; return w_a / w_b at convergence.

    Task losses are ``scale * L(W)`` for the same ``L``; from step 1 on task a's loss is multiplied by
    ``later_a`` (``< 1``: task a "trains faster", its loss ratio L/L(0) falls).
    """
    torch.manual_seed(0)
    shared = nn.Linear(4, 8)
    x, y = torch.randn(64, 4), torch.randn(64, 8)
    gn = GradNorm(["a", "b"], alpha=1.5)
    opt_w = torch.optim.Adam(gn.parameters(), lr=0.03)
    for step in range(steps):
        opt_w.zero_grad()
        base = (shared(x) - y).pow(2).mean()
        losses = {"a": scale_a * (later_a if step else 1.0) * base, "b": scale_b * base}
        total, weights = gn(losses, [shared.weight])
        total.backward()
        opt_w.step()
        gn.after_optimizer_step()
    assert sum(weights.values()) == pytest.approx(2.0, rel=1e-4)
    return weights["a"] / weights["b"]


def test_gradnorm_balances_gradient_magnitudes() -> None:
    """Task b's gradients are 10x larger and both train at the same rate: G_a = G_b needs w_a / w_b = 10."""
    assert _gradnorm_fixed_point(1.0, 10.0) == pytest.approx(10.0, rel=0.05)
    assert _gradnorm_fixed_point(1.0, 1.0) == pytest.approx(1.0, rel=0.05)


def test_gradnorm_favours_the_slower_task() -> None:
    """Task a's loss ratio halves (it trains faster): r_a / r_b = 0.5, so G_a / G_b = 0.5 ** alpha.

    With G_a = w_a * 0.5 ||grad L|| and G_b = w_b ||grad L||: w_a / w_b = 2 * 0.5 ** 1.5 = 0.707.
    """
    assert _gradnorm_fixed_point(1.0, 1.0, later_a=0.5) == pytest.approx(2 * 0.5**1.5, rel=0.1)


def test_gradnorm_gets_no_network_gradient_from_lgrad() -> None:
    """Network gradients come from sum_k w_k L_k only; the weights get theirs from L_grad only."""
    torch.manual_seed(0)
    shared = nn.Linear(3, 3)
    x = torch.randn(8, 3)
    gn = GradNorm(["a", "b"])
    with torch.no_grad():
        gn.w.copy_(torch.tensor([0.5, 1.5]))

    def losses():
        z = shared(x)
        return {"a": z[:, 0].pow(2).mean(), "b": 5 * z[:, 1].pow(2).mean()}

    total, _ = gn(losses(), [shared.weight])
    total.backward()
    got = shared.weight.grad.clone()
    shared.zero_grad()
    ls = losses()
    (0.5 * ls["a"] + 1.5 * ls["b"]).backward()
    torch.testing.assert_close(got, shared.weight.grad)
    assert gn.w.grad is not None and torch.all(gn.w.grad != 0)
    with pytest.raises(ConfigError, match="shared"):
        gn(losses())


def test_create_weighting() -> None:
    assert isinstance(create_weighting("dwa", ["a"]), DynamicWeightAverage)
    with pytest.raises(ConfigError, match="unknown task weighting"):
        create_weighting("magic", ["a"])
