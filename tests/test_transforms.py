"""Batched joint augmentations: shared geometry, exact D4, nearest masks, dropout, determinism."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from eoreps.errors import ConfigError, DataError
from eoreps.transforms import (
    BandGainOffset,
    Compose,
    ModalityDropout,
    RandomFlipRotate,
    RandomResizedCrop,
    TwoViews,
    apply_d4,
)


def _batch(b: int = 16, c: int = 12, s: int = 16, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    s2 = torch.randn(b, c, s, s, generator=g)
    blocks = torch.randint(0, 5, (b, s // 4, s // 4), generator=g)
    mask = blocks.repeat_interleave(4, 1).repeat_interleave(4, 2)  # piecewise constant 4x4 blocks
    mask[:, 0, 0] = -100
    return {
        "s2": s2,
        "s1": s2[:, :2].clone(),
        "weather": torch.randn(b, 3, generator=g),
        "mask": mask,
        "valid_s2": torch.rand(b, s, s, generator=g) > 0.1,
        "label": torch.arange(b),
        "id": [str(i) for i in range(b)],
    }


def _reference_d4(x: torch.Tensor, g: int) -> torch.Tensor:
    if g >= 4:
        x = x.flip(-1)
    return torch.rot90(x, g % 4, dims=(-2, -1))


def test_d4_is_exact_group_permutation():
    x = torch.randn(8, 3, 5, 5)
    g = torch.arange(8)
    y = apply_d4(x, g)
    for i in range(8):
        assert torch.equal(y[i], _reference_d4(x[i], i))
    # permutation of pixels: the multiset of values per channel is unchanged, elements are distinct
    assert torch.equal(y.flatten(2).sort(-1).values, x.flatten(2).sort(-1).values)
    assert (
        len({tuple(_reference_d4(torch.arange(25.0).view(5, 5), i).flatten().tolist()) for i in range(8)})
        == 8
    )
    # all 8 elements are drawn, roughly uniformly
    counts = torch.bincount(
        RandomFlipRotate().sample_params(8000, torch.Generator().manual_seed(0)), minlength=8
    )
    assert counts.min() > 850 and counts.max() < 1150
    assert set(RandomFlipRotate(rotate=False).sample_params(400).tolist()) == {0, 2, 4, 6}
    assert set(RandomFlipRotate(flip=False).sample_params(400).tolist()) == {0, 1, 2, 3}


@pytest.mark.parametrize("transform", [RandomFlipRotate(), RandomResizedCrop(12, scale=(0.3, 1.0))],
                         ids=["d4", "rrc"])
def test_joint_geometry(transform):
    batch = _batch()
    out = transform(batch, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out["s1"], out["s2"][:, :2])  # the same transform on both modalities
    assert not torch.equal(out["s2"], batch["s2"][..., : out["s2"].shape[-1], : out["s2"].shape[-1]])
    assert torch.equal(out["weather"], batch["weather"]) and out["id"] == batch["id"]
    assert out["mask"].dtype == torch.int64 and out["valid_s2"].dtype == torch.bool
    assert set(out["mask"].unique().tolist()) <= set(batch["mask"].unique().tolist())
    # the mask moves with the image: an image channel holding the mask's values agrees with it
    probe = dict(batch, s2=batch["mask"][:, None].float())
    moved = transform(probe, generator=torch.Generator().manual_seed(1))
    agree = (moved["s2"][:, 0] == moved["mask"].float()).float().mean()
    assert agree > (0.999 if isinstance(transform, RandomFlipRotate) else 0.6), agree
    # and a misaligned one would not (guards against a test that cannot fail)
    other = transform(probe, generator=torch.Generator().manual_seed(2))
    assert (other["s2"][:, 0] == moved["mask"].float()).float().mean() < agree


def test_rrc_identity_box_and_sizes():
    batch = _batch(s=16)
    same = RandomResizedCrop(16, scale=(1.0, 1.0), ratio=(1.0, 1.0))(batch)
    assert (same["s2"] - batch["s2"]).abs().max() < 1e-5
    assert torch.equal(same["mask"], batch["mask"]) and torch.equal(same["valid_s2"], batch["valid_s2"])
    rrc = RandomResizedCrop((8, 12), scale=(0.25, 0.5))
    box = rrc.sample_params(1000, 16, 16, torch.Generator().manual_seed(0))
    area = box[:, 2] * box[:, 3]
    assert torch.all((area >= 0.25 - 1e-6) & (area <= 0.5 + 1e-6))
    assert torch.all(box[:, :2] >= 0) and torch.all(box[:, :2] + box[:, 2:] <= 1 + 1e-6)
    out = rrc(batch)
    assert out["s2"].shape == (16, 12, 8, 12) and out["mask"].shape == (16, 8, 12)
    # a coarser co-registered grid gets a proportionally smaller output
    mixed = {"s2": torch.randn(4, 4, 16, 16), "s2_20m": torch.randn(4, 6, 8, 8)}
    out = RandomResizedCrop(16)(mixed)
    assert out["s2"].shape == (4, 4, 16, 16) and out["s2_20m"].shape == (4, 6, 8, 8)


def test_d4_joint_across_resolutions():
    fine = torch.randn(6, 2, 16, 16)
    batch = {"s2": fine, "s2_20m": F.avg_pool2d(fine, 2)}
    out = RandomFlipRotate()(batch, generator=torch.Generator().manual_seed(3))
    assert (out["s2_20m"] - F.avg_pool2d(out["s2"], 2)).abs().max() < 1e-6


@pytest.mark.parametrize("channels", [1, 2, 12, 202])
def test_any_band_count(channels):
    batch = _batch(b=4, c=channels, s=8)
    batch["s1"] = torch.randn(4, 2, 8, 8)
    aug = Compose([RandomFlipRotate(), RandomResizedCrop(8), BandGainOffset(0.1, 0.1), ModalityDropout(0.3)])
    out = aug(batch, generator=torch.Generator().manual_seed(0))
    assert out["s2"].shape == (4, channels, 8, 8) and torch.isfinite(out["s2"]).all()
    assert out["mask"].shape == (4, 8, 8)


def test_gain_offset_per_band_and_independent_per_modality():
    batch = _batch()
    batch["valid_s2"] = torch.ones_like(batch["valid_s2"])
    batch["valid_s2"][:, 0, 0] = False
    out = BandGainOffset(gain_std=0.0, offset_std=0.5)(batch, generator=torch.Generator().manual_seed(0))
    diff = out["s2"] - batch["s2"]
    per_band = diff[:, :, 1:, 1:].flatten(2)
    assert (per_band - per_band[..., :1]).abs().max() < 1e-5  # one offset per (sample, band)
    assert per_band[..., 0].std() > 0.2  # offsets differ across samples and bands
    assert torch.all(diff[:, :, 0, 0] == 0)  # invalid (filled) pixels untouched
    assert not torch.allclose(out["s1"], out["s2"][:, :2])  # s1 drew its own noise
    assert torch.equal(out["mask"], batch["mask"]) and torch.equal(out["weather"], batch["weather"])
    same = BandGainOffset(0.0, 0.0)(batch)
    assert torch.equal(same["s2"], batch["s2"])


def test_modality_dropout_never_drops_all():
    b = 2000
    batch = {"s2": torch.ones(b, 3, 4, 4), "s1": torch.ones(b, 2, 4, 4), "weather": torch.ones(b, 3),
             "valid_s1": torch.ones(b, 4, 4, dtype=torch.bool), "mask": torch.ones(b, 4, 4, dtype=torch.long),
             "multilabel": torch.ones(b, 5)}
    for p in (1.0, 0.5):
        out = ModalityDropout(p)(batch, generator=torch.Generator().manual_seed(0))
        dropped = torch.stack([(out[k].flatten(1) == 0).all(1) for k in ("s2", "s1", "weather")], 1)
        assert not dropped.all(1).any()
        assert torch.equal(out["multilabel"], batch["multilabel"]) and torch.equal(out["mask"], batch["mask"])
        assert torch.equal(out["valid_s1"].flatten(1).any(1), ~dropped[:, 1])
        if p == 1.0:
            assert torch.all(dropped.sum(1) == 2)
        else:  # P(drop) = 0.5 - P(all three drawn)/3 = 0.5 - 0.125/3
            assert abs(dropped.float().mean().item() - (0.5 - 0.125 / 3)) < 0.03
    single = ModalityDropout(1.0)({"s2": torch.ones(4, 3, 4, 4)})
    assert torch.all(single["s2"] == 1)


def test_determinism_and_two_views():
    batch = _batch()
    aug = Compose([RandomFlipRotate(), RandomResizedCrop(16), BandGainOffset(), ModalityDropout(0.5)])
    a = aug(batch, generator=torch.Generator().manual_seed(7))
    b = aug(batch, generator=torch.Generator().manual_seed(7))
    c = aug(batch, generator=torch.Generator().manual_seed(8))
    for k in ("s2", "s1", "mask", "valid_s2"):
        assert torch.equal(a[k], b[k])
    assert not torch.equal(a["s2"], c["s2"])
    v1, v2 = TwoViews(aug)(batch, generator=torch.Generator().manual_seed(7))
    assert torch.equal(v1["s2"], a["s2"]) and not torch.equal(v1["s2"], v2["s2"])
    w1, w2 = TwoViews(aug)(batch, generator=torch.Generator().manual_seed(7))
    assert torch.equal(v2["s2"], w2["s2"])
    assert torch.equal(batch["s2"], _batch()["s2"])  # input untouched


def test_errors():
    with pytest.raises(DataError, match="square"):
        RandomFlipRotate()({"s2": torch.zeros(2, 3, 8, 6)})
    out = RandomFlipRotate(rotate=False)({"s2": torch.arange(2 * 48.0).view(2, 1, 8, 6)})
    assert out["s2"].shape == (2, 1, 8, 6)
    with pytest.raises(DataError, match="batch"):
        RandomFlipRotate()({"s2": torch.zeros(3, 8, 8)})
    with pytest.raises(ConfigError):
        RandomResizedCrop(8, scale=(0.0, 1.0))
    with pytest.raises(ConfigError):
        ModalityDropout(1.5)
    with pytest.raises(ConfigError):
        RandomFlipRotate(flip=False, rotate=False)


def test_crop_grid_matches_affine_grid():
    from eoreps.transforms import _crop_grid

    box = RandomResizedCrop(8).sample_params(32, 12, 16, torch.Generator().manual_seed(0))
    theta = torch.zeros(32, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = box[:, 2], 2 * box[:, 0] + box[:, 2] - 1
    theta[:, 1, 1], theta[:, 1, 2] = box[:, 3], 2 * box[:, 1] + box[:, 3] - 1
    ref = F.affine_grid(theta, [32, 1, 6, 8], align_corners=False)
    assert (_crop_grid(box, 6, 8) - ref).abs().max() < 1e-6
