"""The windowed autoencoder's token-level bottleneck (``latent="tokens"``, SANE's): one code per weight token,
decoded token by token; the window code is their mean."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from eoreps.errors import DataError
from eoreps.hyper.autoencoder import ModelConfig
from eoreps.hyper.window_autoencoder import WindowAutoencoder
from eoreps.hyper.window_representation import WindowRepresentation, load_window_representation
from eoreps.hyper.window_tokens import TensorScaler, WindowTokenizer

ORDER = [("a.weight", (16, 8)), ("a.bias", (16,)), ("b.weight", (4, 16)), ("b.bias", (4,))]
CFG = ModelConfig(d_model=16, n_heads=2, enc_layers=2, dec_layers=1, latent_dim=4, proj_dim=8)


def _window(tok: WindowTokenizer, k: int, b: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    pos, mask = tok.positions[:k].expand(b, k, 3), tok.mask[:k].expand(b, k, tok.width)
    return torch.randn(b, k, tok.width, generator=g) * mask, pos, mask


def test_token_latent_decodes_each_token_from_its_own_code():
    """forward against a literal transcription: encoder -> per-token Linear -> per-token decode; z the mean
    of the token codes, projected for the contrastive loss."""
    tok = WindowTokenizer(ORDER, 8, chains=[])
    torch.manual_seed(0)
    net = WindowAutoencoder(tok.width, tok.table_sizes, CFG, latent="tokens").eval()
    x, pos, mask = _window(tok, 6, 3)
    z, rec, proj = net(x, pos, mask)
    h = net.encoder(net._encoder_input(x, pos, mask))  # (B, 1 + K, d), final norm applied
    codes = net.to_latent(h[:, 1:])  # (B, K, latent): the compression token is not decoded
    want = net.to_tokens(net.decoder(net.from_latent(codes) + net.dec_pos(pos)))
    torch.testing.assert_close(rec, want)
    torch.testing.assert_close(z, codes.mean(1))
    torch.testing.assert_close(proj, net.projection(codes.mean(1)))
    assert z.shape == (3, CFG.latent_dim) and rec.shape == x.shape
    # encode, encode_blocks and encode_tokens give the same window code
    torch.testing.assert_close(net.encode(x, pos, mask), z)
    torch.testing.assert_close(net.encode_blocks(x, pos, mask)[0], z)
    torch.testing.assert_close(net.encode_tokens(x, pos, mask)[0], z)
    # the decoder gets every token's own code, not one code for the window
    assert not torch.allclose(net.decode(codes, pos), net.decode(codes.mean(1), pos), atol=1e-3)


def test_window_latent_is_the_compression_token_and_unknown_latents_are_refused():
    tok = WindowTokenizer(ORDER, 8, chains=[])
    torch.manual_seed(0)
    net = WindowAutoencoder(tok.width, tok.table_sizes, CFG).eval()
    x, pos, mask = _window(tok, 6, 2)
    z, rec, _ = net(x, pos, mask)
    h = net.encoder(net._encoder_input(x, pos, mask))
    torch.testing.assert_close(z, net.to_latent(h[:, 0]))
    want = net.to_tokens(net.decoder(net.from_latent(z)[:, None] + net.dec_pos(pos)))  # one code, every token
    torch.testing.assert_close(rec, want)
    with pytest.raises(ValueError, match="latent 'neuron'"):
        WindowAutoencoder(tok.width, tok.table_sizes, CFG, latent="neuron")


def _fit_reconstruction(latent: str, steps: int = 200) -> float:
    """Mean reconstruction loss over the last 10 of ``steps`` steps of the windowed module (gamma 0: MSE
    only, no augmentation) on Gaussian weights, with the given bottleneck."""
    from eoreps.hyper.augment import AugmentConfig
    from eoreps.hyper.window_module import WindowModule, window_module_kwargs

    tok = WindowTokenizer(ORDER, 8, chains=[])
    g = torch.Generator().manual_seed(0)
    W = torch.randn(32, tok.num_params, generator=g)
    sc = TensorScaler.fit(tok, W)
    torch.manual_seed(0)
    kw = window_module_kwargs(tok, 8, CFG, AugmentConfig(permute=False, noise=0.0, erase_prob=0.0), 0.0, 0.1,
                              3e-3, 0.0, latent=latent)
    mod = WindowModule(**kw, scaler_mean=sc.mean, scaler_std=sc.std)
    assert mod.net.latent == latent
    opt = torch.optim.AdamW(mod.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        loss = mod._step((W[torch.randint(0, 32, (16,), generator=g)],))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return sum(losses[-10:]) / 10


def test_token_codes_reconstruct_what_one_window_code_cannot():
    """Gaussian weights have no structure to compress: one 4-value code per window of 8 tokens x 8 values
    cannot reconstruct them, 4 values per token can reconstruct about half; the token bottleneck must be
    trained end to end (encoder -> token codes -> decoder) to show it."""
    tokens, window = _fit_reconstruction("tokens"), _fit_reconstruction("window")
    assert tokens < 0.85 * window, (tokens, window)


def _saved(tmp_path, latent: str) -> tuple:
    tok = WindowTokenizer(ORDER, 8, chains=[])
    torch.manual_seed(0)
    net = WindowAutoencoder(tok.width, tok.table_sizes, CFG, latent=latent)
    W = torch.randn(4, tok.num_params)
    sc = TensorScaler.fit(tok, W)
    meta = {"config": {"precision": "fp32"}, "tokenizer": "window", "window": 8, "model": CFG.to_dict(),
            "window_tokenizer": tok.to_dict(), "window_readout": "tokens", "window_latent": latent}
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file({**state, "scaler.mean": sc.mean, "scaler.std": sc.std}, str(tmp_path / "model.safetensors"))
    (tmp_path / "hyper.json").write_text(json.dumps(meta))
    return meta, W


def _load(tmp_path, meta) -> WindowRepresentation:
    from safetensors.torch import load_file

    return load_window_representation(tmp_path, meta, load_file(str(tmp_path / "model.safetensors")))


def test_a_saved_token_latent_loads_embeds_and_refuses_to_sample(tmp_path):
    meta, W = _saved(tmp_path, "tokens")
    rep = _load(tmp_path, meta)
    assert rep.net.latent == "tokens"
    z, blocks = rep.embed_blocks(W)
    assert z.shape == (4, CFG.latent_dim) and blocks.shape == (4, rep.blocks_dim)
    with pytest.raises(DataError, match=r"hyper.json: fitted with window_latent 'tokens'.*refit with --wi"):
        rep.codes(W)
    with pytest.raises(DataError, match="window_latent 'tokens'"):
        rep.decode(z)
    meta["window_latent"] = "neurons"
    with pytest.raises(DataError, match=r"hyper.json: window_latent 'neurons' is not one of window, tokens"):
        _load(tmp_path, meta)


def test_representations_saved_before_the_key_load_with_the_window_latent(tmp_path):
    meta, W = _saved(tmp_path, "window")
    del meta["window_latent"]
    rep = _load(tmp_path, meta)
    assert rep.net.latent == "window"
    assert rep.codes(W).shape == (4, len(rep.starts) * CFG.latent_dim)
