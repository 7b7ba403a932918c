"""Losses against slow literal transcriptions of their formulas."""

from __future__ import annotations

import math

import pytest
import torch

from eoreps.errors import ConfigError
from eoreps.ssl.losses import NTXent, mae_loss, nt_xent, triplet_loss


def literal_nt_xent(a: torch.Tensor, b: torch.Tensor, tau: float) -> float:
    """L = 1/(2N) sum_k [l(2k-1, 2k) + l(2k, 2k-1)], l(i,j) = -log e^{s_ij/t} / sum_{k != i} e^{s_ik/t}."""
    n = a.shape[0]
    z = []
    for k in range(n):  # interleave: z_{2k-1} = a_k, z_{2k} = b_k (0-based: 2k, 2k+1)
        z.append(a[k].double() / a[k].double().norm())
        z.append(b[k].double() / b[k].double().norm())

    def sim(i: int, j: int) -> float:
        return float(sum(z[i][d] * z[j][d] for d in range(len(z[i]))))

    def ell(i: int, j: int) -> float:
        den = sum(math.exp(sim(i, k) / tau) for k in range(2 * n) if k != i)
        return -math.log(math.exp(sim(i, j) / tau) / den)

    return sum(ell(2 * k, 2 * k + 1) + ell(2 * k + 1, 2 * k) for k in range(n)) / (2 * n)


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_nt_xent_matches_literal_formula(tau: float) -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    loss, cands = nt_xent(a, b, tau)
    assert cands == 11
    assert loss.item() == pytest.approx(literal_nt_xent(a, b, tau), rel=1e-5, abs=1e-6)


def test_nt_xent_equals_lightly() -> None:
    from lightly.loss import NTXentLoss

    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(16, 8, generator=g), torch.randn(16, 8, generator=g)
    ours, _ = nt_xent(a, b, 0.2)
    assert ours.item() == pytest.approx(NTXentLoss(temperature=0.2)(a, b).item(), rel=1e-5)


def test_nt_xent_is_low_for_aligned_views_and_has_gradient() -> None:
    g = torch.Generator().manual_seed(2)
    a = torch.randn(32, 16, generator=g, requires_grad=True)
    aligned, _ = nt_xent(a, a.detach() + 0.01 * torch.randn(32, 16, generator=g), 0.1)
    shuffled, _ = nt_xent(a, torch.randn(32, 16, generator=g), 0.1)
    assert aligned < shuffled
    aligned.backward()
    assert a.grad is not None and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0


def test_multiview_nt_xent_is_mean_over_pairs() -> None:
    g = torch.Generator().manual_seed(3)
    v = [torch.randn(5, 4, generator=g) for _ in range(3)]
    loss = NTXent(temperature=0.3)(v)
    pairs = [literal_nt_xent(v[i], v[j], 0.3) for i, j in ((0, 1), (0, 2), (1, 2))]
    assert loss.item() == pytest.approx(sum(pairs) / 3, rel=1e-5)
    assert NTXent(0.3)(v[:2]).item() == pytest.approx(pairs[0], rel=1e-5)


def test_nt_xent_rejects_bad_input() -> None:
    with pytest.raises(ConfigError):
        nt_xent(torch.zeros(3, 4), torch.zeros(4, 4))
    with pytest.raises(ConfigError):
        NTXent()([torch.zeros(3, 4)])
    with pytest.raises(ConfigError):
        nt_xent(torch.ones(3, 4), torch.ones(3, 4), temperature=0.0)


def test_triplet_loss_matches_literal_formula() -> None:
    g = torch.Generator().manual_seed(4)
    a, n, d = (torch.randn(7, 3, generator=g) for _ in range(3))
    m = 0.5
    literal = 0.0
    for k in range(7):
        dn = math.sqrt(sum((float(a[k, i]) - float(n[k, i])) ** 2 for i in range(3)))
        dd = math.sqrt(sum((float(a[k, i]) - float(d[k, i])) ** 2 for i in range(3)))
        literal += max(dn - dd + m, 0.0)
    assert triplet_loss(a, n, d, margin=m).item() == pytest.approx(literal / 7, abs=1e-5)


def test_mae_loss_matches_literal_formula() -> None:
    g = torch.Generator().manual_seed(5)
    pred, target = torch.randn(2, 3, 8, generator=g), 5 + 3 * torch.randn(2, 3, 8, generator=g)
    total, count = 0.0, 0
    for b in range(2):
        for m in range(3):
            t = [float(v) for v in target[b, m]]
            mu = sum(t) / 8
            var = sum((v - mu) ** 2 for v in t) / 8
            tn = [(v - mu) / math.sqrt(var + 1e-6) for v in t]
            total += sum((float(p) - v) ** 2 for p, v in zip(pred[b, m], tn, strict=True)) / 8
            count += 1
    assert mae_loss(pred, target).item() == pytest.approx(total / count, rel=1e-5)
    raw = ((pred - target) ** 2).mean().item()
    assert mae_loss(pred, target, norm_pix=False).item() == pytest.approx(raw, rel=1e-6)
