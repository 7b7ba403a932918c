"""Heads: shapes, and the heteroscedastic loss against a literal transcription of its formula."""

from __future__ import annotations

import math

import pytest
import torch

from eoreps.models import create_backbone
from eoreps.models.heads import HeteroscedasticHead, MLPHead, RegressionHead, UNetDecoder, gaussian_nll


def _literal_nll(f: torch.Tensor, s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L = 1/2 (y - f) g (y - f)^T - 1/2 log det g + D/2 log 2 pi, g = diag(exp(-s)), mean over samples."""
    total = torch.zeros((), dtype=torch.float64)
    d = f.shape[1]
    for i in range(f.shape[0]):
        r = (y[i] - f[i]).double()[None, :]  # row vector (1, D)
        g = torch.diag(torch.exp(-s[i].double()))
        total = total + 0.5 * (r @ g @ r.T)[0, 0] - 0.5 * torch.logdet(g) + d / 2 * math.log(2 * math.pi)
    return total / f.shape[0]


@pytest.mark.parametrize("d", [1, 3])
def test_gaussian_nll_equals_formula(d: int) -> None:
    g = torch.Generator().manual_seed(0)
    f, s, y = (torch.randn(7, d, generator=g) for _ in range(3))
    ours = gaussian_nll(f, s, y) if d > 1 else gaussian_nll(f[:, 0], s[:, 0], y[:, 0])
    torch.testing.assert_close(ours.double(), _literal_nll(f, s, y), rtol=1e-5, atol=1e-5)


def test_gaussian_nll_minimised_at_true_variance() -> None:
    y = torch.randn(20000) * 3.0
    f = torch.zeros_like(y)
    losses = {v: float(gaussian_nll(f, torch.full_like(y, math.log(v)), y)) for v in (4.0, 9.0, 16.0)}
    assert losses[9.0] < losses[4.0] and losses[9.0] < losses[16.0]


def test_head_shapes() -> None:
    z = torch.randn(4, 16)
    assert MLPHead(16, 5, hidden=8, dropout=0.1)(z).shape == (4, 5)
    assert RegressionHead(16)(z).shape == (4,)
    assert RegressionHead(16, out_dim=3)(z).shape == (4, 3)
    mean, log_var = HeteroscedasticHead(16)(z)
    assert mean.shape == log_var.shape == (4,)


@pytest.mark.parametrize("name,kwargs", [("cnn-tiny", {}), ("timm:vit_tiny_patch16_224", {"img_size": 32, "patch_size": 4})])
def test_unet_decoder_over_backbone_maps(name: str, kwargs: dict) -> None:
    bb = create_backbone(name, in_chans=3, **kwargs)
    dec = UNetDecoder([f["num_chs"] for f in bb.feature_info], num_classes=6, channels=16, dropout=0.1)
    x = torch.randn(2, 3, 32, 32)
    logits = dec(bb.forward_maps(x), (32, 32))
    assert logits.shape == (2, 6, 32, 32)
    logits.sum().backward()
    assert all(p.grad is not None for p in dec.parameters())
