"""Heads: shapes, and the heteroscedastic loss against a literal transcription of its formula."""

from __future__ import annotations

import math

import pytest
import torch

from eoreps.models import create_backbone
from eoreps.models.heads import (
    AttentionPool,
    HeteroscedasticHead,
    MLPHead,
    RegressionHead,
    UNetDecoder,
    gaussian_nll,
)


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


@pytest.mark.parametrize(
    "name,kwargs", [("cnn-tiny", {}), ("timm:vit_tiny_patch16_224", {"img_size": 32, "patch_size": 4})]
)
def test_unet_decoder_over_backbone_maps(name: str, kwargs: dict) -> None:
    bb = create_backbone(name, in_chans=3, **kwargs)
    dec = UNetDecoder([f["num_chs"] for f in bb.feature_info], num_classes=6, channels=16, dropout=0.1)
    x = torch.randn(2, 3, 32, 32)
    logits = dec(bb.forward_maps(x), (32, 32))
    assert logits.shape == (2, 6, 32, 32)
    logits.sum().backward()
    assert all(p.grad is not None for p in dec.parameters())


def test_attention_pool_starts_as_average_pooling_and_is_a_weighted_mean() -> None:
    x = torch.randn(3, 8, 5, 6)
    pool = AttentionPool(8)
    torch.testing.assert_close(pool(x), x.mean((2, 3)))  # zero-initialised scorer: uniform weights
    with torch.no_grad():
        pool.score.weight.normal_()
    a = pool.weights(x)
    assert a.shape == (3, 5, 6)
    torch.testing.assert_close(a.sum((1, 2)), torch.ones(3))
    want = torch.stack([(x[i] * a[i]).sum((1, 2)) for i in range(3)])  # the literal weighted sum
    torch.testing.assert_close(pool(x), want)
    # a location with a much higher score takes (almost) all the weight
    with torch.no_grad():
        pool.score.weight.zero_()
        pool.score.weight[0, 0] = 50.0
    x = torch.zeros(1, 8, 4, 4)
    x[0, 0, 2, 3] = 1.0
    x[0, 1, 2, 3] = 7.0
    assert pool(x)[0, 1].item() > 6.9


def test_multihead_attention_pooling() -> None:
    from eoreps.errors import ConfigError
    from eoreps.models.fusion import InputSpec, build_encoder
    from eoreps.tasks.multitask import MultiHeadModel
    from eoreps.tasks.spec import TaskSpec

    specs = [InputSpec("s2", 4, "image")]
    enc = build_encoder("early", specs, "cnn-tiny", (16, 16))
    tasks = [
        TaskSpec("classify", num_classes=3, name="fuel"),
        TaskSpec("segment", num_classes=2, name="plume"),
        TaskSpec("regress", name="power"),
    ]
    avg = MultiHeadModel(enc, tasks).eval()
    att = MultiHeadModel(enc, tasks, pooling="attention").eval()
    att.heads.load_state_dict(avg.heads.state_dict())
    assert set(att.pools) == {"fuel", "power"}  # one pool per image-level head, none for segmentation
    batch = {"s2": torch.randn(2, 4, 16, 16)}
    a, b = avg(batch), att(batch)
    for k in (
        "fuel",
        "power",
    ):  # untrained attention = average pooling of the deepest map = the pooled features
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    with pytest.raises(ConfigError, match="unknown head pooling"):
        MultiHeadModel(enc, tasks, pooling="max")
