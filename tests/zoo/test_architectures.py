from __future__ import annotations

import pytest
import torch

from eoreps.errors import ConfigError
from eoreps.zoo.architectures import ARCH_NAMES, build_model, flatten_state, load_flat, make_arch


def test_published_cnn_has_2464_parameters_in_state_dict_order():
    arch = make_arch("cnn_s", (1, 28, 28), 10)
    assert arch.num_params == 2464
    net = build_model(arch, "tanh", "kaiming_uniform", seed=0)
    assert sum(p.numel() for p in net.parameters()) == 2464
    assert [k for k, _ in arch.param_shapes()] == list(net.state_dict())
    assert [k for k, _ in arch.param_shapes()][:2] == ["conv1.weight", "conv1.bias"]
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("name", ARCH_NAMES)
def test_every_architecture_runs_and_roundtrips_flat_weights(name):
    arch = make_arch(name)
    net = build_model(arch, "gelu", "normal", seed=3, dropout=0.5).eval()
    x = torch.randn(2, *arch.in_shape)
    flat = flatten_state(net)
    assert flat.shape == (arch.num_params,)
    twin = load_flat(build_model(arch, "gelu", "uniform", seed=9), flat).eval()
    torch.testing.assert_close(twin(x), net(x))


def test_parameter_counts_of_variants():
    assert make_arch("cnn_s_rgb").num_params == 3424
    assert make_arch("cnn_digits").num_params == 958
    assert make_arch("mlp").num_params == 2410
    assert make_arch("cnn_ms", (12, 32, 32), 8).num_params == 11280


def test_init_is_deterministic_and_scheme_dependent():
    arch = make_arch("cnn_digits")
    a = flatten_state(build_model(arch, "relu", "kaiming_normal", 5))
    b = flatten_state(build_model(arch, "relu", "kaiming_normal", 5))
    c = flatten_state(build_model(arch, "relu", "kaiming_normal", 6))
    d = flatten_state(build_model(arch, "relu", "uniform", 5))
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, d)
    assert float(d.abs().max()) <= 0.1


def test_bad_names_and_shapes_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="unknown architecture"):
        make_arch("resnet")
    with pytest.raises(ConfigError, match="3-channel"):
        make_arch("cnn_s_rgb", (1, 32, 32))
    with pytest.raises(ConfigError, match="does not fit"):
        make_arch("cnn_s", (1, 8, 8))
