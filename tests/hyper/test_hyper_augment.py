"""Augmentations: permutations preserve the function on real inputs; noise and erasing behave."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from eoreps.hyper.augment import AugmentConfig, Permuter, add_noise, erase_tokens, two_views
from eoreps.hyper.tokens import Tokenizer, TokenScaler
from eoreps.zoo.architectures import (
    ACTIVATIONS,
    ARCH_NAMES,
    ZooNet,
    build_model,
    flatten_state,
    load_flat,
    make_arch,
)


@pytest.fixture(scope="module")
def real_images():
    """32 real sklearn digits (1 x 8 x 8, scaled to [0, 1])."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return torch.tensor(d.images[:32], dtype=torch.float32)[:, None] / 16.0


def _inputs(real: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Real digits resized to ``shape`` (C, H, W), channels repeated."""
    c, h, w = shape
    x = real if (h, w) == (8, 8) else F.interpolate(real, size=(h, w), mode="bilinear", align_corners=False)
    return x.repeat(1, c, 1, 1)


@pytest.mark.parametrize("name", ARCH_NAMES)
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_permutation_preserves_the_function(name, activation, real_images):
    torch.manual_seed(0)
    arch = make_arch(name)
    tok = Tokenizer.from_arch(arch)
    perm = Permuter(tok)
    w = torch.stack([flatten_state(build_model(arch, activation, "kaiming_uniform", s)) for s in range(2)])
    w = w + 0.05 * torch.randn_like(w)  # nonzero biases, so a wrong bias permutation would show
    g = torch.Generator().manual_seed(1)
    wp = perm.random(w, g)
    assert not torch.equal(wp, w)
    assert torch.equal(wp.sort(dim=1).values, w.sort(dim=1).values)  # only moved, never changed
    x = _inputs(real_images, arch.in_shape)
    for i in range(2):
        a = load_flat(ZooNet(arch, activation), w[i]).eval()(x)
        b = load_flat(ZooNet(arch, activation), wp[i]).eval()(x)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_a_wrong_permutation_changes_the_function(real_images):
    """Guard that the test above can fail: permuting rows without the next layer's columns breaks it."""
    arch = make_arch("cnn_digits")
    tok = Tokenizer.from_arch(arch)
    w = flatten_state(build_model(arch, "relu", "kaiming_uniform", 0))
    sp = tok.layers[0]
    rows = w[sp.weight_offset: sp.weight_offset + sp.n_out * sp.fan_in].reshape(sp.n_out, -1)
    bad = w.clone()
    bad[sp.weight_offset: sp.weight_offset + rows.numel()] = rows.flip(0).reshape(-1)
    x = _inputs(real_images, arch.in_shape)
    a = load_flat(ZooNet(arch, "relu"), w).eval()(x)
    b = load_flat(ZooNet(arch, "relu"), bad).eval()(x)
    assert (a - b).abs().max() > 1e-3


def test_identity_and_composition():
    arch = make_arch("cnn_s")
    perm = Permuter(Tokenizer.from_arch(arch))
    w = torch.randn(3, arch.num_params)
    assert torch.equal(perm.apply(w, perm.identity_perms(3)), w)
    g = torch.Generator().manual_seed(0)
    p = perm.random_perms(3, g)
    inv = [torch.argsort(q, dim=1) for q in p]
    assert torch.equal(perm.apply(perm.apply(w, p), inv), w)


def test_noise_and_erasing_respect_mask():
    tok = Tokenizer.from_arch(make_arch("cnn_digits"))
    t = tok.tokenize(torch.randn(8, tok.num_params))
    g = torch.Generator().manual_seed(0)
    n = add_noise(t, tok.mask, 0.1, g)
    assert torch.all(n[:, ~tok.mask] == 0)
    assert 0.05 < (n - t)[:, tok.mask].std() < 0.2
    e = erase_tokens(t, 0.5, g)
    erased = (e.abs().sum(-1) == 0)
    assert 0.2 < erased.float().mean() < 0.8
    kept = ~erased
    assert torch.equal(e[kept], t[kept])


@pytest.mark.parametrize("name", ARCH_NAMES)
def test_canonical_form_is_shared_by_all_permutations_and_keeps_the_function(name, real_images):
    arch = make_arch(name)
    perm = Permuter(Tokenizer.from_arch(arch))
    w = torch.stack([flatten_state(build_model(arch, "tanh", "normal", s)) for s in range(3)])
    w = w + 0.05 * torch.randn(w.shape, generator=torch.Generator().manual_seed(0))
    c = perm.canonical(w)
    g = torch.Generator().manual_seed(2)
    for _ in range(3):
        assert torch.equal(perm.canonical(perm.random(w, g)), c)
    assert torch.equal(perm.canonical(c), c)
    # hidden units sorted by |w_in|^2 + b^2 in every hidden layer
    for li in perm.hidden:
        sp = perm.layers[li]
        rows = c[:, sp.weight_offset: sp.weight_offset + sp.n_out * sp.fan_in].reshape(3, sp.n_out, -1)
        key = rows.pow(2).sum(-1) + c[:, sp.bias_offset: sp.bias_offset + sp.n_out].pow(2)
        assert torch.all(key[:, 1:] >= key[:, :-1] - 1e-6)
    x = _inputs(real_images, arch.in_shape)
    a = load_flat(ZooNet(arch, "tanh"), w[0]).eval()(x)
    b = load_flat(ZooNet(arch, "tanh"), c[0]).eval()(x)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def _setup(name: str, n: int) -> tuple[Tokenizer, torch.Tensor, TokenScaler, Permuter]:
    """Tokenizer, n random weight vectors, their scaler and a permuter for architecture ``name``."""
    tok = Tokenizer.from_arch(make_arch(name))
    w = torch.randn(n, tok.num_params)
    return tok, w, TokenScaler.fit(tok, w), Permuter(tok)


def test_canonical_target_is_the_same_for_both_views():
    tok, w, sc, perm = _setup("cnn_s", 4)
    v1, t1, v2, t2 = two_views(w, tok, sc, perm, AugmentConfig(target="canonical"),
                               torch.Generator().manual_seed(0))
    assert torch.equal(t1, t2)
    torch.testing.assert_close(t1, sc.transform(tok.tokenize(perm.canonical(w))))
    assert not torch.equal(v1, v2)


def test_canonical_input_makes_views_permutation_free():
    tok, w, sc, perm = _setup("mlp", 3)
    cfg = AugmentConfig(noise=0.0, erase_prob=0.0, canonical_input=True)
    v1, _, v2, _ = two_views(w, tok, sc, perm, cfg, torch.Generator().manual_seed(0))
    assert torch.equal(v1, v2)
    torch.testing.assert_close(v1, sc.transform(tok.tokenize(perm.canonical(w))))


def test_unknown_target_is_refused():
    from eoreps.errors import ConfigError

    with pytest.raises(ConfigError, match="canonical"):
        AugmentConfig(target="sorted")


def test_two_views_differ_and_targets_are_clean_permutations():
    arch = make_arch("cnn_digits")
    tok = Tokenizer.from_arch(arch)
    w = torch.randn(4, arch.num_params)
    sc = TokenScaler.fit(tok, w)
    v1, t1, v2, t2 = two_views(w, tok, sc, Permuter(tok), AugmentConfig(target="view"),
                               torch.Generator().manual_seed(0))
    assert v1.shape == t1.shape == (4, tok.n_tokens, tok.width)
    assert not torch.equal(v1, v2)
    # targets hold the same multiset of weights as the input, per model
    r1 = tok.detokenize(sc.inverse(t1))
    torch.testing.assert_close(r1.sort(1).values, w.sort(1).values, rtol=0, atol=1e-5)
