"""Backbone factory: shapes, feature_info consistent with the maps, any band count, errors."""

from __future__ import annotations

import pytest
import torch

from eoreps.errors import ConfigError
from eoreps.models import create_backbone, list_backbones, register_backbone
from eoreps.models.base import Backbone

VIT = ("timm:vit_tiny_patch16_224", {"img_size": 32, "patch_size": 4})
CASES = [
    ("cnn-tiny", {}),
    ("cnn-small", {}),
    ("timm:resnet18", {}),
    VIT,
]


def _check(bb: Backbone, in_chans: int, size: int = 32, batch: int = 2) -> None:
    x = torch.randn(batch, in_chans, size, size)
    bb.eval()
    with torch.no_grad():
        pooled = bb(x)
        maps = bb.forward_maps(x)
        pooled2, maps2 = bb.forward_all(x)
    assert pooled.shape == (batch, bb.num_features)
    assert torch.isfinite(pooled).all()
    assert len(maps) == len(bb.feature_info) >= 1
    for m, info in zip(maps, bb.feature_info, strict=True):
        assert m.shape == (batch, info["num_chs"], size // info["reduction"], size // info["reduction"])
    torch.testing.assert_close(pooled2, pooled)
    for a, b in zip(maps, maps2, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name,kwargs", CASES, ids=[c[0] for c in CASES])
def test_shapes_and_feature_info(name: str, kwargs: dict) -> None:
    bb = create_backbone(name, in_chans=12, **kwargs)
    assert bb.in_chans == 12
    assert bb.spec["name"] == name and bb.spec["in_chans"] == 12
    _check(bb, 12)


@pytest.mark.parametrize("in_chans", [1, 2, 12, 13])
@pytest.mark.parametrize(
    "name,kwargs", [("cnn-small", {}), ("timm:resnet18", {}), VIT], ids=["cnn", "resnet", "vit"]
)
def test_any_band_count(name: str, kwargs: dict, in_chans: int) -> None:
    bb = create_backbone(name, in_chans=in_chans, **kwargs)
    x = torch.randn(2, in_chans, 32, 32)
    with torch.no_grad():
        assert bb.eval()(x).shape == (2, bb.num_features)


def test_cnn_small_size_and_gradients() -> None:
    bb = create_backbone("cnn-small", in_chans=12)
    assert 0.2e6 < bb.num_params < 0.4e6
    assert bb.num_features == 128
    assert [f["reduction"] for f in bb.feature_info] == [2, 4, 8]
    x = torch.randn(4, 12, 32, 32).to(memory_format=torch.channels_last)
    bb.to(memory_format=torch.channels_last)
    bb(x).pow(2).mean().backward()
    assert all(p.grad is not None for p in bb.parameters())


def test_vit_maps_are_token_grids() -> None:
    bb = create_backbone(*VIT[:1], in_chans=3, **VIT[1])
    assert len(bb.feature_info) == 4  # evenly spaced blocks of 12
    assert all(f["reduction"] == 4 for f in bb.feature_info)
    assert bb.num_features == 192


def test_timm_kwargs_and_larger_input() -> None:
    bb = create_backbone("timm:resnet18", in_chans=2, drop_rate=0.1)
    assert bb.num_features == 512
    _check(bb, 2, size=64, batch=1)


def test_unknown_names() -> None:
    with pytest.raises(ConfigError, match="unknown backbone 'cnn-smal'.*did you mean 'cnn-small'"):
        create_backbone("cnn-smal", in_chans=3)
    with pytest.raises(ConfigError, match="unknown timm model 'resnet181'"):
        create_backbone("timm:resnet181", in_chans=3)
    with pytest.raises(ConfigError, match="invalid option"):
        create_backbone("cnn-small", in_chans=3, bogus=1)
    with pytest.raises(ConfigError, match="input channel"):
        create_backbone("cnn-small", in_chans=0)


def test_list_and_register() -> None:
    names = list_backbones()
    assert {"cnn-tiny", "cnn-small", "timm:resnet18", "timm:vit_tiny_patch16_224"} <= set(names)

    class Flat(Backbone):
        def __init__(self, in_chans: int) -> None:
            super().__init__()
            self.in_chans, self.num_features = in_chans, in_chans
            self.feature_info = [{"num_chs": in_chans, "reduction": 1}]

        def forward_all(self, x):
            return x.mean(dim=(2, 3)), [x]

    register_backbone("test-flat", Flat)
    try:
        bb = create_backbone("test-flat", in_chans=5)
        _check(bb, 5)
        with pytest.raises(ConfigError, match="already registered"):
            register_backbone("test-flat", lambda in_chans: Flat(in_chans))
        with pytest.raises(ConfigError, match="reserved"):
            register_backbone("timm:x", Flat)
    finally:
        from eoreps.models import registry

        registry.BACKBONES.remove("test-flat")
