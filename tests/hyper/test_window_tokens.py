"""Sequential weight tokens (hyper/window_tokens.py): exact round trip on every registered backbone,
3-part positions, BatchNorm rows, function-preserving permutations, bad architectures."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from eoreps.errors import ConfigError
from eoreps.hyper.window_tokens import TensorScaler, WindowTokenizer, verify_chains
from eoreps.models.registry import BACKBONES, create_backbone
from eoreps.zoo.architectures import make_arch

BACKBONE_NAMES = [*BACKBONES.names(), "timm:resnet18"]


@pytest.fixture(scope="module")
def resnet18() -> nn.Module:
    torch.manual_seed(0)
    net = create_backbone("timm:resnet18", in_chans=3).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so permuting them matters
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_()
                m.bias.normal_()
    return net


@pytest.mark.parametrize("name", BACKBONE_NAMES)
def test_round_trip_is_bitwise_on_every_backbone(name: str, resnet18: nn.Module) -> None:
    net = resnet18 if name == "timm:resnet18" else create_backbone(name, in_chans=3)
    sd = net.state_dict()
    tok = WindowTokenizer.from_state_dict(sd, width=64)
    flat = tok.flatten(sd)
    tokens = tok.tokenize(flat)
    assert tokens.shape == (tok.n_tokens, 64)
    assert int(tok.mask.sum()) == tok.num_params
    assert tok.num_params == sum(v.numel() for v in sd.values() if v.is_floating_point())
    back = tok.unflatten(tok.detokenize(tokens), {k: v.dtype for k, v in sd.items()})
    assert set(back) | set(tok.skipped) == set(sd)
    assert all(torch.equal(back[k], sd[k]) for k in back)
    assert tok.skipped and all(k.endswith("num_batches_tracked") for k in tok.skipped)
    if name == "timm:resnet18":
        assert tok.num_params == 11_176_512 + 9_600  # parameters + BatchNorm running mean/var
        # conv rows with their BatchNorm appended: layer4 conv (512 x 512*3*3) + 4 BN values per unit
        widest = max(la.row for la in tok.layers)
        assert widest == 512 * 9 + 4


def test_positions_are_layer_unit_chunk() -> None:
    net = create_backbone("cnn-tiny", in_chans=3)
    tok = WindowTokenizer.from_state_dict(net, width=8)
    stem = tok.layers[0]
    names = [tok.param_order[j][0] for j in stem.tensors]
    assert names == ["stem.0.weight", "stem.1.weight", "stem.1.bias", "stem.1.running_mean",
                     "stem.1.running_var"]
    assert stem.row == 3 * 3 * 3 + 4 and stem.chunks == math.ceil(31 / 8)
    # the first unit's four chunks, then the second unit's
    assert tok.positions[:5].tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 0, 3], [0, 1, 0]]
    assert tok.mask[3].sum() == 31 - 3 * 8  # the last chunk of a row is padded
    flat = tok.flatten(net.state_dict())
    # token (unit 1, chunk 3) ends with unit 1's BatchNorm weight, bias, running mean, running var
    sd = net.state_dict()
    want = [sd[f"stem.1.{k}"][1] for k in ("weight", "bias", "running_mean", "running_var")]
    assert torch.equal(tok.tokenize(flat)[7, 3:7], torch.stack(want))
    starts = tok.window_starts(10)
    covered = torch.zeros(tok.n_tokens, dtype=torch.bool)
    for s in starts:
        covered[s:s + 10] = True
    assert covered.all() and starts[-1] == tok.n_tokens - 10


def test_resnet_permutation_keeps_function_and_skips_summed_layers(resnet18: nn.Module) -> None:
    tok = WindowTokenizer.from_state_dict(resnet18, width=64)
    heads = [tok.layers[a].name for a, _ in tok.chains]
    # only conv1 -> conv2 inside each of the 8 basic blocks: conv2, stem and downsample outputs are summed
    assert len(heads) == 8 and all(h.endswith(".conv1") and ".layer" in h for h in heads)
    # a backbone zoo stores num_batches_tracked as a float scalar: it sits between conv1 and conv2
    as_zoo = WindowTokenizer([(k, tuple(v.shape)) for k, v in resnet18.state_dict().items()], 64)
    assert len(as_zoo.layers) == len(tok.layers) + len(tok.skipped)
    assert [(as_zoo.layers[a].name, as_zoo.layers[b].name) for a, b in as_zoo.chains] == [
        (tok.layers[a].name, tok.layers[b].name) for a, b in tok.chains]
    x = torch.randn(2, 3, 32, 32)
    assert verify_chains(tok, resnet18, x) == tok.chains
    flat = tok.flatten(resnet18.state_dict())
    perm = tok.permute(flat, torch.Generator().manual_seed(1))
    assert not torch.equal(perm, flat)
    net2 = create_backbone("timm:resnet18", in_chans=3).eval()
    net2.load_state_dict(tok.unflatten(perm), strict=False)
    with torch.no_grad():
        assert torch.allclose(net2(x), resnet18(x), atol=1e-4, rtol=1e-4)


def test_layer_list_chains_match_the_sequential_network() -> None:
    from eoreps.zoo.architectures import ZooNet, load_flat

    arch = make_arch("cnn_s", (1, 28, 28), 10)
    tok = WindowTokenizer(arch.param_shapes(), 64)
    assert tok.chains == [(0, 1), (1, 2), (2, 3), (3, 4)]  # conv -> conv -> conv -> (flatten) fc -> fc
    torch.manual_seed(0)
    net = ZooNet(arch, "relu", 0.0).eval()
    flat = tok.flatten(net.state_dict())
    assert verify_chains(tok, net, torch.randn(3, 1, 28, 28)) == tok.chains
    other = load_flat(ZooNet(arch, "relu", 0.0), tok.permute(flat)).eval()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(other(x), net(x), atol=1e-5)


class _Parallel(nn.Module):
    """q and k read the same input: the same-parent heuristic wrongly chains them."""

    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(6, 6)
        self.k = nn.Linear(6, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.q(x) * self.k(x)


def test_verify_chains_drops_a_wrong_heuristic_chain() -> None:
    torch.manual_seed(0)
    net = _Parallel()
    tok = WindowTokenizer.from_state_dict(net, width=4)
    assert tok.chains == [(0, 1)]
    assert verify_chains(tok, net, torch.randn(5, 6)) == []


class _RaisesWhenPermuted(_Parallel):
    """Raises in forward once its weights differ from the first call's (a permuted forward that fails)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not hasattr(self, "first"):
            self.first = self.q.weight.detach().clone()
        elif not torch.equal(self.q.weight, self.first):
            raise RuntimeError("permuted forward failed")
        return super().forward(x)


def test_verify_chains_restores_the_module_when_a_permuted_forward_raises() -> None:
    torch.manual_seed(0)
    net = _RaisesWhenPermuted()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    tok = WindowTokenizer.from_state_dict(net, width=4)
    with pytest.raises(RuntimeError, match="permuted forward failed"):
        verify_chains(tok, net, torch.randn(5, 6))
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("state, match", [
    ({}, "no floating-point parameters"),
    ({"a.weight": torch.zeros(0, 3)}, "'a.weight' has shape \\(0, 3\\)"),
    ({"a.weight": torch.zeros(2, 2, dtype=torch.complex64)}, "'a.weight' is complex"),
])
def test_untokenisable_architectures_are_one_line(state: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as e:
        WindowTokenizer.from_state_dict(state)
    assert "\n" not in str(e.value)


def test_window_larger_than_the_model_is_refused() -> None:
    tok = WindowTokenizer(make_arch("cnn_digits", (1, 8, 8), 10).param_shapes(), 64)
    with pytest.raises(ConfigError, match=f"window=41 must lie in \\[1, {tok.n_tokens}\\]"):
        tok.window_starts(41)


def test_scaler_standardises_per_tensor_and_inverts() -> None:
    tok = WindowTokenizer([("a.weight", (4, 3)), ("a.bias", (4,)), ("b.weight", (2, 4))], width=5)
    W = torch.randn(20, tok.num_params) * torch.tensor([3.0] * 12 + [0.1] * 4 + [10.0] * 8) + 2.0
    sc = TensorScaler.fit(tok, W)
    ids, mask = tok.tensor_ids(), tok.mask
    std = sc.transform(tok.tokenize(W), ids, mask)
    back = tok.detokenize(std)
    for o, n in zip(tok.offsets, tok.sizes, strict=True):  # each tensor: mean 0, std 1 over the models
        assert abs(float(back[:, o:o + n].mean())) < 1e-4
        assert abs(float(back[:, o:o + n].std()) - 1.0) < 1e-3
    assert torch.allclose(tok.detokenize(sc.inverse(std, ids, mask)), W, atol=1e-5)


def test_scaler_falls_back_to_unit_std_for_constant_and_single_values() -> None:
    tok = WindowTokenizer([("a.weight", (4, 3)), ("bn.running_var", (4,)), ("bn.num_batches_tracked", ())],
                          width=5)
    W = torch.randn(1, tok.num_params)
    W[:, 12:16] = 0.5  # a constant tensor over every model
    sc = TensorScaler.fit(tok, W)
    assert sc.std[1] == 1.0 and sc.mean[1] == 0.5  # constant: std 1, not 0
    assert sc.std[2] == 1.0  # one value in all: the sample std is undefined
    assert torch.isclose(sc.std[0], W[:, :12].std())
