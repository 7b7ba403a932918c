"""Token statistics in the encoder: a literal per-token transcription, and the option end to end."""

from __future__ import annotations

import pytest
import torch

from eoreps.hyper.autoencoder import HyperAutoencoder, ModelConfig, token_statistics
from eoreps.hyper.tokens import Tokenizer
from eoreps.zoo.architectures import make_arch

SMALL = dict(d_model=32, n_heads=2, enc_layers=1, dec_layers=1, latent_dim=8, proj_dim=6)


def _literal(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The six statistics token by token with Python loops over the real entries."""
    B, T, _ = tokens.shape
    out = torch.zeros(B, T, 6)
    for b in range(B):
        for t in range(T):
            real = tokens[b, t][mask[t]]
            w, bias = real[:-1], real[-1]
            out[b, t] = torch.stack([w.mean(), w.std(unbiased=False), w.abs().mean(), w.max(), w.min(), bias])
    return out


@pytest.mark.parametrize("arch", ["cnn_s", "mlp"])
def test_token_statistics_match_a_literal_transcription(arch):
    tok = Tokenizer.from_arch(make_arch(arch))
    x = tok.tokenize(torch.randn(2, tok.num_params, generator=torch.Generator().manual_seed(0)))
    torch.testing.assert_close(token_statistics(x, tok.mask), _literal(x, tok.mask), rtol=1e-5, atol=1e-5)


def test_token_stats_option_trains_and_needs_the_mask():
    tok = Tokenizer.from_arch(make_arch("cnn_s"))
    cfg = ModelConfig(**SMALL, token_stats=True)
    with pytest.raises(ValueError, match="mask"):
        HyperAutoencoder(tok.width, tok.positions, cfg)
    net = HyperAutoencoder(tok.width, tok.positions, cfg, tok.mask)
    x = tok.tokenize(torch.randn(3, tok.num_params))
    z, rec, proj = net(x)
    assert z.shape == (3, 8) and rec.shape == x.shape
    (z.square().mean() + rec.square().mean()).backward()
    assert all(p.grad is not None for n, p in net.stat_embed.named_parameters())
