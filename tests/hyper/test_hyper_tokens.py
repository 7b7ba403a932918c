"""Tokenization: exact weights -> tokens -> weights round trip for every zoo architecture."""

from __future__ import annotations

import pytest
import torch

from eoreps.errors import DataError
from eoreps.hyper.tokens import Tokenizer, TokenScaler
from eoreps.zoo.architectures import ARCH_NAMES, build_model, flatten_state, make_arch


@pytest.mark.parametrize("name", ARCH_NAMES)
def test_round_trip_is_exact_for_every_architecture(name):
    arch = make_arch(name)
    tok = Tokenizer.from_arch(arch)
    w = torch.stack([flatten_state(build_model(arch, "relu", "kaiming_normal", s)) for s in range(3)])
    w[:, -1] = 3.25  # a nonzero bias too (biases are initialised to 0)
    t = tok.tokenize(w)
    assert t.shape == (3, tok.n_tokens, tok.width)
    assert torch.equal(tok.detokenize(t), w)
    assert tok.mask.sum() == arch.num_params  # every weight sits in exactly one slot
    assert torch.all(t[:, ~tok.mask] == 0)
    assert tok.n_tokens == sum(sp.n_out for sp in tok.layers)


def test_cnn_s_layout_and_token_contents():
    arch = make_arch("cnn_s")
    tok = Tokenizer.from_arch(arch)
    assert (tok.n_tokens, tok.width) == (48, 201)
    w = torch.arange(arch.num_params, dtype=torch.float32)
    t = tok.tokenize(w)
    # token 9 = conv2 kernel 1: weights of conv2.weight[1] then conv2.bias[1]
    sd = {k: v for k, v in zip([k for k, _ in arch.param_shapes()], _split(w, arch), strict=True)}
    assert torch.equal(t[9, :200], sd["conv2.weight"][1].reshape(-1))
    assert t[9, 200] == sd["conv2.bias"][1]
    assert tok.positions[9].tolist() == [1, 1]
    assert tok.positions[47].tolist() == [4, 9]
    # fc2 token: 20 weights + bias, then padding
    assert torch.equal(t[40, :20], sd["fc2.weight"][2]) and t[40, 20] == sd["fc2.bias"][2]
    assert not tok.mask[40, 21:].any()


def _split(w, arch):
    out, o = [], 0
    for _, s in arch.param_shapes():
        n = int(torch.tensor(s).prod())
        out.append(w[o:o + n].reshape(s))
        o += n
    return out


def test_round_trip_of_real_zoo_checkpoints(tiny_zoo):
    from eoreps.zoo.modelzoo import ModelZoo

    zoo = ModelZoo(tiny_zoo)
    tok = Tokenizer(zoo.param_order)
    W = zoo.weights_matrix()
    assert torch.equal(tok.detokenize(tok.tokenize(W)), W)


def test_scaler_standardises_per_layer_and_inverts():
    arch = make_arch("cnn_digits")
    tok = Tokenizer.from_arch(arch)
    w = torch.stack([flatten_state(build_model(arch, "tanh", "uniform", s)) for s in range(20)])
    w = w + torch.randn_like(w) * 0.01
    sc = TokenScaler.fit(tok, w)
    z = sc.transform(tok.tokenize(w))
    for li in range(tok.n_layers):
        sel = (tok.token_layer == li)[:, None] & tok.mask & ~tok.is_bias
        vals = z[:, sel]
        assert abs(vals.mean().item()) < 1e-4 and abs(vals.std().item() - 1) < 1e-3
    torch.testing.assert_close(tok.detokenize(sc.inverse(z)), w, rtol=0, atol=1e-6)


def test_wrong_length_is_a_one_line_error():
    tok = Tokenizer.from_arch(make_arch("mlp"))
    with pytest.raises(DataError, match="another architecture"):
        tok.tokenize(torch.zeros(2, 10))
    with pytest.raises(DataError, match="no bias"):
        Tokenizer([("fc.weight", (3, 4))])
