"""``benchmarks/hyper_window_compare.py``: the windowed readouts (window means and per-layer means)."""

from __future__ import annotations

import torch

from eoreps.hyper.autoencoder import ModelConfig
from eoreps.hyper.window_autoencoder import WindowAutoencoder
from eoreps.hyper.window_representation import WindowRepresentation
from eoreps.hyper.window_tokens import TensorScaler, WindowTokenizer

ORDER = [("a.weight", (16, 8)), ("a.bias", (16,)), ("b.weight", (16, 16)), ("b.bias", (16,)),
         ("c.weight", (4, 16))]



def test_window_readouts_are_the_window_means_and_the_per_layer_means(bench_script):
    torch.manual_seed(0)
    tok = WindowTokenizer(ORDER, 8, chains=[])
    W = torch.randn(5, tok.num_params)
    cfg = ModelConfig(d_model=16, n_heads=2, enc_layers=1, dec_layers=1, latent_dim=8, proj_dim=8)
    rep = WindowRepresentation({"config": {"precision": "fp32"}}, tok, TensorScaler.fit(tok, W),
                               WindowAutoencoder(tok.width, tok.table_sizes, cfg).eval(), 8)
    feats = bench_script("hyper_window_compare").window_readouts(rep, W, batch_size=4)
    z, blocks = rep.embed_blocks(W)
    torch.testing.assert_close(feats["z"], z)
    torch.testing.assert_close(feats["learned"], blocks)
    codes, block_codes = rep.window_codes(W)
    layer_of = [int(tok.positions[s, 0]) for s in rep.starts]
    layers = sorted(set(layer_of))
    assert len(layers) > 1  # the windows start in several layers
    for name, c in (("z/layer", codes), ("learned/layer", block_codes)):  # literal per-layer averages
        cols = [[i for i, li in enumerate(layer_of) if li == layer] for layer in layers]
        want = torch.cat([c[:, idx].mean(1) for idx in cols], 1)
        torch.testing.assert_close(feats[name], want)
