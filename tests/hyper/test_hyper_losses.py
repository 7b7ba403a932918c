"""The loss against a literal transcription of its formula; the autoencoder's shapes."""

from __future__ import annotations

import math

import pytest
import torch

from eoreps.errors import ConfigError
from eoreps.hyper.autoencoder import HyperAutoencoder, ModelConfig
from eoreps.hyper.losses import HyperLoss, masked_mse
from eoreps.hyper.tokens import Tokenizer
from eoreps.zoo.architectures import make_arch


def literal_ntxent(a: torch.Tensor, b: torch.Tensor, tau: float) -> float:
    """NT-Xent, term by term: 2N views z_k; for each anchor i with positive j(i),
    l_i = -log( exp(sim(z_i, z_j)/tau) / sum_{k != i} exp(sim(z_i, z_k)/tau) ), averaged over 2N."""
    z = [v.double() for v in torch.cat([a, b])]
    n2 = len(z)
    n = n2 // 2

    def sim(u, v):
        return float(u @ v) / (math.sqrt(float(u @ u)) * math.sqrt(float(v @ v)))

    total = 0.0
    for i in range(n2):
        j = i + n if i < n else i - n
        den = sum(math.exp(sim(z[i], z[k]) / tau) for k in range(n2) if k != i)
        total += -math.log(math.exp(sim(z[i], z[j]) / tau) / den)
    return total / n2


def literal_mse(pred, target, mask) -> float:
    s, c = 0.0, 0
    for b in range(pred.shape[0]):
        for t in range(pred.shape[1]):
            for w in range(pred.shape[2]):
                if mask[t, w]:
                    s += (float(pred[b, t, w]) - float(target[b, t, w])) ** 2
                    c += 1
    return s / c


@pytest.mark.parametrize("gamma", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_loss_matches_literal_transcription(gamma, tau):
    g = torch.Generator().manual_seed(0)
    B, T, W, P = 5, 4, 6, 3
    p1, p2 = torch.randn(B, P, generator=g), torch.randn(B, P, generator=g)
    r1, t1, r2, t2 = (torch.randn(B, T, W, generator=g) for _ in range(4))
    mask = torch.rand(T, W, generator=g) > 0.3
    parts = HyperLoss(gamma, tau)(p1, p2, r1, t1, r2, t2, mask)
    c = literal_ntxent(p1, p2, tau)
    m = literal_mse(torch.cat([r1, r2]), torch.cat([t1, t2]), mask)
    if gamma > 0:
        assert parts.contrastive.item() == pytest.approx(c, rel=1e-5)
    assert parts.reconstruction.item() == pytest.approx(m, rel=1e-5)
    assert parts.total.item() == pytest.approx(gamma * c + (1 - gamma) * m, rel=1e-5)


def test_masked_mse_ignores_padding():
    pred, target = torch.zeros(2, 3, 4), torch.zeros(2, 3, 4)
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[:, :2] = True
    pred[..., 2:] = 100.0  # padding: ignored
    pred[..., :2] = 1.0
    assert masked_mse(pred, target, mask).item() == pytest.approx(1.0)


def test_bad_gamma_is_a_config_error():
    with pytest.raises(ConfigError, match="gamma"):
        HyperLoss(1.5)


def test_autoencoder_shapes_and_gradients():
    tok = Tokenizer.from_arch(make_arch("cnn_s"))
    net = HyperAutoencoder(
        tok.width,
        tok.positions,
        ModelConfig(d_model=32, n_heads=2, enc_layers=1, dec_layers=1, latent_dim=8, proj_dim=6),
        tok.mask,
    )
    x = tok.tokenize(torch.randn(3, tok.num_params))
    z, rec, proj = net(x)
    assert z.shape == (3, 8) and rec.shape == x.shape and proj.shape == (3, 6)
    loss = HyperLoss(0.5)(proj, proj.flip(0), rec, x, rec, x, tok.mask).total
    loss.backward()
    assert all(p.grad is not None for n, p in net.named_parameters())
    # the decoder sees only z: equal latents give equal reconstructions
    torch.testing.assert_close(net.decode(z[:1].expand(2, -1)), net.decode(z[:1]).expand(2, -1, -1))
