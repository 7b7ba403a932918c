"""Adding a zoo architecture = one file + ``@register_arch``: a toy one is built and trained-shape checked."""

from __future__ import annotations

import pytest
import torch

from eoreps.errors import ConfigError
from eoreps.zoo.architectures import (
    ARCH_NAMES,
    ARCHITECTURES,
    Arch,
    Op,
    build_model,
    canonical_arch_name,
    make_arch,
    register_arch,
)


@pytest.fixture()
def toy_arch():
    @register_arch("toy_linear", in_shape=(2, 4, 4), channels=2)
    def toy_linear(in_shape: tuple[int, int, int], num_classes: int) -> Arch:
        d = in_shape[0] * in_shape[1] * in_shape[2]
        return Arch("toy_linear", in_shape, num_classes, (Op("flatten"), Op("linear", "fc1", d, num_classes)))

    yield toy_linear
    ARCHITECTURES.remove("toy_linear")


def test_toy_architecture_is_built(toy_arch) -> None:
    assert canonical_arch_name("Toy-Linear") == "toy_linear"  # "-"/"_" and case, as for the built-ins
    arch = make_arch("toy-linear", num_classes=3)
    assert arch.in_shape == (2, 4, 4) and arch.num_params == 32 * 3 + 3
    model = build_model(arch, "relu", "normal", seed=0)
    assert model(torch.randn(5, 2, 4, 4)).shape == (5, 3)
    assert make_arch("toy_linear", in_shape=(2, 2, 2), num_classes=2).num_params == 8 * 2 + 2
    with pytest.raises(ConfigError, match="needs 2-channel input"):
        make_arch("toy_linear", in_shape=(3, 4, 4))


def test_toy_architecture_is_gone_after_the_fixture() -> None:
    assert "toy_linear" not in ARCHITECTURES and "toy_linear" not in ARCH_NAMES
    with pytest.raises(ConfigError, match="unknown architecture 'toy_linear'"):
        make_arch("toy_linear")


def test_builtin_architectures_keep_their_shapes() -> None:
    assert ARCH_NAMES == ("cnn_s", "cnn_s_rgb", "cnn_digits", "mlp", "cnn_ms")
    assert [make_arch(n).num_params for n in ARCH_NAMES] == [2464, 3424, 958, 2410, 11346]
    with pytest.raises(ConfigError, match="is a backbone"):
        make_arch("cnn-small")


def test_builtin_listing_matches_the_decorators_and_the_backbone_registry_needs_no_zoo() -> None:
    """The built-in names listed below the zoo (models.arch_registry) are exactly those the decorators
    register; the backbone registry tells a zoo name from an unknown one without importing the zoo."""
    import subprocess
    import sys

    from eoreps.models.arch_registry import BUILTIN_ARCHS

    assert all(ARCHITECTURES.registered(n) is not None for n in BUILTIN_ARCHS) and ARCH_NAMES == BUILTIN_ARCHS
    code = ("import sys\nfrom eoreps.errors import ConfigError\nfrom eoreps.models.registry import "
            "canonical_backbone_name\ntry:\n    canonical_backbone_name('cnn_s')\nexcept ConfigError as e:\n"
            "    print(e)\nprint('eoreps.zoo.architectures' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "model-zoo architecture" in out and out.strip().endswith("False"), out
