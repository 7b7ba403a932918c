"""Window parts (hyper/window_parts.py): a window's tokens and permutations from the tensors it reads only."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from eoreps.hyper.window_parts import parts_from_flat, permute_parts, tokenize_parts, touched_tensors
from eoreps.hyper.window_tokens import WindowTokenizer
from eoreps.models.registry import create_backbone
from eoreps.zoo.architectures import build_model, make_arch


def _bn_noise(net: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics, so permuting them matters."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def test_window_tokens_from_parts_equal_whole_model_tokens() -> None:
    tok = WindowTokenizer(make_arch("cnn_s", (1, 28, 28), 10).param_shapes(), 16)
    W = torch.randn(3, tok.num_params)
    for start in range(0, tok.n_tokens - 7):
        parts = parts_from_flat(tok, W, start, 8)
        assert len(parts.tensors) < len(tok.sizes)  # a window reads part of the model
        assert torch.equal(tokenize_parts(tok, parts), tok.tokenize(W, start, 8))


def test_touched_tensors_are_those_the_tokens_read() -> None:
    tok = WindowTokenizer(make_arch("cnn_s", (1, 28, 28), 10).param_shapes(), 16)
    first = tok.layers[0]  # conv1: weight (25 values) + bias per unit: two tokens of 16
    assert touched_tensors(tok, 0, 1) == (first.tensors[0],)  # the first chunk holds weights only
    assert touched_tensors(tok, 0, 2) == first.tensors


@pytest.mark.parametrize("name", ["cnn_s", "timm:resnet18"])
def test_batched_permutation_of_all_parts_keeps_every_model_function(name: str) -> None:
    torch.manual_seed(0)
    if name == "cnn_s":
        net = build_model(make_arch("cnn_s", (1, 28, 28), 10), "gelu", "kaiming_uniform", 0).eval()
        x = torch.randn(2, 1, 28, 28)
    else:
        net, x = _bn_noise(create_backbone("timm:resnet18", in_chans=3)), torch.randn(2, 3, 32, 32)
    tok = WindowTokenizer.from_state_dict(net, 64)
    assert tok.chains
    flat = tok.flatten(net.state_dict())
    W = torch.stack([flat, flat])  # two models, each gets its own permutation
    parts = parts_from_flat(tok, W, 0, tok.n_tokens)
    out = permute_parts(tok, parts, torch.Generator().manual_seed(1))
    permuted = torch.cat(out.values, dim=1)
    assert not torch.equal(permuted[0], flat) and not torch.equal(permuted[0], permuted[1])
    with torch.no_grad():
        ref = net(x)
        for row in permuted:
            net.load_state_dict(tok.unflatten(row), strict=False)
            assert torch.allclose(net(x), ref, atol=1e-4, rtol=1e-4)


def test_window_permutation_matches_whole_model_permutation_of_the_same_chains() -> None:
    """A window's permuted tokens are those of the whole model permuted with the same draws: the parts
    hold every value the window's permutation moves in."""
    tok = WindowTokenizer(make_arch("cnn_s", (1, 28, 28), 10).param_shapes(), 16)
    W = torch.randn(4, tok.num_params)
    for start in (0, 5, tok.n_tokens - 8):
        parts = parts_from_flat(tok, W, start, 8)
        read = set(parts.tensors)
        chains = [(a, b) for a, b in tok.chains
                  if read & set(tok.layers[a].tensors) or tok.layers[b].tensors[0] in read]
        window = permute_parts(tok, parts, torch.Generator().manual_seed(2))
        whole = permute_parts(tok, parts_from_flat(tok, W, 0, tok.n_tokens),
                              torch.Generator().manual_seed(2), chains)
        expect = tok.tokenize(torch.cat(whole.values, dim=1), start, 8)
        got = tokenize_parts(tok, window)
        assert torch.equal(got, expect)
        if chains:
            assert not torch.equal(got, tok.tokenize(W, start, 8))


def test_gather_window_reads_only_the_source_rows_of_each_draw():
    """Rows that source_rows does not name may hold anything (NaN here): the permuted tokens are unchanged,
    for a layer-list CNN and a BatchNorm CNN, unpermuted and permuted."""
    from eoreps.hyper.window_parts import draw_permutations, gather_window, permuted_tokens, source_rows

    for tok in (WindowTokenizer(make_arch("cnn_s", (1, 28, 28), 10).param_shapes(), 16),
                WindowTokenizer.from_state_dict(create_backbone("cnn-tiny", in_chans=3), 16)):
        assert tok.chains
        W = torch.randn(3, tok.num_params)
        skipped = 0
        for start in range(0, tok.n_tokens - 8, 5):
            parts = parts_from_flat(tok, W, start, 8)
            for draws in (None, draw_permutations(tok, start, 8, 3, torch.Generator().manual_seed(start))):
                want = (permuted_tokens(tok, parts, torch.Generator().manual_seed(start)) if draws
                        else tokenize_parts(tok, parts))
                rows = source_rows(tok, start, 8, draws)
                assert set(rows) == set(parts.tensors)
                holed = []
                for j, v in zip(parts.tensors, parts.values, strict=True):
                    shape = tok.param_order[j][1]
                    n = shape[0] if shape else 1
                    keep = torch.zeros(n, dtype=torch.bool)
                    keep[rows[j]] = True
                    skipped += int((~keep).sum())
                    holed.append(torch.where(keep.repeat_interleave(v.shape[1] // n)[None], v, torch.nan))
                got = gather_window(tok, replace(parts, values=tuple(holed)),
                                    draws or draw_permutations(tok, start, 8, 3, chains=[]))
                assert torch.equal(got, want), start
        assert skipped > 0  # the window does not need every row
