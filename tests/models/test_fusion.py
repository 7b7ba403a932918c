"""Early / late fusion: stacking, broadcasting, weight sharing, and late fusion of one modality."""

from __future__ import annotations

import pytest
import torch

from eoreps.errors import ConfigError
from eoreps.models import create_backbone
from eoreps.models.fusion import EarlyFusion, InputSpec, LateFusion, build_encoder, input_specs


def _batch(b: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "s2": torch.randn(b, 12, 32, 32, generator=g),
        "s1": torch.randn(b, 2, 32, 32, generator=g),
        "dem": torch.randn(b, 1, 16, 16, generator=g),
        "season": torch.randn(b, 2, generator=g),
        "weather": torch.randn(b, 3, generator=g),
        "landcover": torch.randint(0, 8, (b, 1, 32, 32), generator=g),
    }


def _specs(names):
    sample = {k: v[0] for k, v in _batch().items()}
    return input_specs(sample, names)


def test_input_specs() -> None:
    specs = {s.name: s for s in _specs(["s2", "season", "landcover"])}
    assert specs["s2"] == InputSpec("s2", 12, "image")
    assert specs["season"] == InputSpec("season", 2, "vector")
    assert specs["landcover"].channels == 8 and specs["landcover"].num_classes == 8
    with pytest.raises(ConfigError, match="modality 'no2' is not in this dataset"):
        _specs(["no2"])


def test_early_fusion_stacks_and_broadcasts() -> None:
    enc = EarlyFusion(_specs(["s2", "dem", "season", "landcover"]), "cnn-tiny", (32, 32))
    batch = _batch()
    x = enc.stack(batch)
    assert x.shape == (2, 12 + 1 + 2 + 8, 32, 32)
    season = x[:, 13:15]
    assert torch.equal(season, batch["season"][:, :, None, None].expand(-1, -1, 32, 32))
    assert torch.allclose(x[:, 15:].sum(1), torch.ones(2, 32, 32))  # one-hot land cover
    pooled, maps = enc.forward_all(batch)
    assert pooled.shape == (2, enc.num_features)
    assert [m.shape[1] for m in maps] == [f["num_chs"] for f in enc.feature_info]


def test_nan_inputs_become_zero() -> None:
    enc = EarlyFusion(_specs(["s2"]), "cnn-tiny", (32, 32))
    batch = _batch()
    batch["s2"][0, :, :5] = float("nan")
    assert torch.isfinite(enc(batch)).all()


def test_late_fusion_of_one_modality_equals_single_model() -> None:
    torch.manual_seed(0)
    single = create_backbone("cnn-tiny", in_chans=12).eval()
    late = LateFusion(_specs(["s2"]), "cnn-tiny", (32, 32)).eval()
    late.encoders["s2"].load_state_dict(single.state_dict())
    batch = _batch()
    pooled, maps = late.forward_all(batch)
    ref_pooled, ref_maps = single.forward_all(batch["s2"])
    assert torch.equal(pooled, ref_pooled)
    for a, b in zip(maps, ref_maps, strict=True):
        assert torch.equal(a, b)
    assert late.num_features == single.num_features and late.feature_info == single.feature_info


def test_late_fusion_concatenates_and_shares() -> None:
    names = ["s2", "s1", "weather"]
    late = LateFusion(_specs(names), "cnn-tiny", (32, 32), vector_width=16)
    pooled, maps = late.forward_all(_batch())
    assert pooled.shape == (2, 32 + 32 + 16) == (2, late.num_features)
    assert [m.shape[1] for m in maps] == [f["num_chs"] for f in late.feature_info] == [16, 32, 64 + 16]
    shared = LateFusion(_specs(names), "cnn-tiny", (32, 32), share_weights=True)
    assert shared.encoders["s2"] is shared.encoders["s1"]
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(shared) < n(late)
    assert shared(_batch()).shape == (2, shared.num_features)


def test_vector_only_late_fusion_and_errors() -> None:
    late = LateFusion(_specs(["season", "weather"]), "cnn-tiny", (32, 32))
    pooled, maps = late.forward_all(_batch())
    assert pooled.shape == (2, 64) and maps[0].shape == (2, 64, 1, 1)
    with pytest.raises(ConfigError, match="unknown fusion"):
        build_encoder("middle", _specs(["s2"]), "cnn-tiny", (32, 32))
    with pytest.raises(ConfigError, match="late fusion only"):
        build_encoder("early", _specs(["s2"]), "cnn-tiny", (32, 32), share_weights=True)
