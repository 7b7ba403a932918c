"""Pretext-task methods (rotation, jigsaw, band-prediction, inpainting): their mechanics and
a pretrain + export each."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _pretrain_helpers import cli_pretrain_quick, tiny_config  # noqa: I001

from eoreps.data.modalities import S2_L2A
from eoreps.data.stats import BandStats
from eoreps.errors import ConfigError
from eoreps.models import load_backbone
from eoreps.ssl.methods import get_method
from eoreps.ssl.methods.band_prediction import first_conv, masked_mse
from eoreps.ssl.methods.inpainting import inpainting_loss, square_masks
from eoreps.ssl.methods.jigsaw import assemble, cut_tiles, min_hamming, select_permutations
from eoreps.ssl.methods.rotation import rotate_all
from eoreps.ssl.pretrain import run_pretrain

PRETEXT = ["rotation", "jigsaw", "band-prediction", "inpainting"]
HELD = [S2_L2A.bands.index(b) for b in ("B05", "B06", "B07", "B11", "B12")]  # the default held-out bands


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _method(name: str, modalities=("s2", "s1"), size=(32, 32), **kw):
    chans = {"s2": 12, "s1": 2}
    stats = BandStats(
        mean={m: (0.0,) * chans[m] for m in modalities},
        std={m: (1.0,) * chans[m] for m in modalities},
        bands={"s2": S2_L2A.bands, "s1": ("VV", "VH")},
    ).to_dict()
    return get_method(name)(
        modalities=list(modalities),
        in_chans={m: chans[m] for m in modalities},
        stats=stats,
        backbone="cnn-tiny",
        image_size=size,
        max_steps=4,
        **kw,
    )


# ------------------------------------------------------------------------------------ end to end
@pytest.mark.parametrize("method", PRETEXT)
def test_pretext_methods_pretrain_and_export(method: str, simeo_small: Path, tmp_path: Path) -> None:
    result = run_pretrain(tiny_config(method, simeo_small, tmp_path))
    assert result.steps > 0 and torch.isfinite(torch.tensor(result.metrics["train/loss"]))
    bb = load_backbone(tmp_path / "backbone.safetensors")
    assert bb.card["method"] == method and bb.card["modalities"] == ["s2", "s1"] and bb.in_chans == 14
    assert bb.eval()(torch.randn(2, 14, 32, 32)).shape == (2, bb.num_features)
    hp = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)[
        "hyper_parameters"
    ]
    if method == "jigsaw":  # the permutation classes travel with the checkpoint
        assert hp["permutations"] == [list(p) for p in select_permutations(100, 9, 0)]
    if method == "band-prediction":  # the held-out bands' input weights stayed exactly 0 through training
        conv = first_conv(bb, 14)
        assert conv is not None and conv.weight[:, HELD].abs().max() == 0
        assert conv.weight[:, [i for i in range(14) if i not in HELD]].abs().min() > 0


def test_cli_band_prediction_with_named_bands(simeo_small: Path, tmp_path: Path) -> None:
    args = ["--method", "band-prediction", "--method-kwargs", "bands=B11+B12"]
    res = cli_pretrain_quick(args, simeo_small, tmp_path)
    assert res.exit_code == 0, res.output
    bb = load_backbone(tmp_path)
    assert bb.card["method"] == "band-prediction" and bb.in_chans == 12
    conv = first_conv(bb, 12)
    assert (
        conv is not None and conv.weight[:, [10, 11]].abs().max() == 0 and conv.weight[:, :10].abs().min() > 0
    )


# -------------------------------------------------------------------------------------- rotation
def test_rotations_and_labels_invert() -> None:
    x = torch.randn(3, 5, 8, 8)
    views, labels = rotate_all(x)
    assert views.shape == (12, 5, 8, 8) and labels.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    back = torch.stack([torch.rot90(v, -int(k), dims=(-2, -1)) for v, k in zip(views, labels, strict=True)])
    assert torch.equal(back, x.repeat(4, 1, 1, 1))
    assert torch.equal(views[3], x[0].transpose(-2, -1).flip(-2))  # one counter-clockwise quarter turn
    assert not torch.equal(views[3], x[0])


def test_rotation_views_and_checks() -> None:
    m = _method("rotation", crop_scale=None)
    batch = m.normalize({"s2": torch.randn(2, 12, 32, 32), "s1": torch.randn(2, 2, 32, 32)})
    x, labels = m.make_views(batch)
    assert x.shape == (8, 14, 32, 32) and torch.equal(x[:2], torch.cat([batch["s2"], batch["s1"]], 1))
    loss, logs = m.loss((x, labels))
    assert loss.ndim == 0 and 0 <= logs["rotation_acc"] <= 1
    with pytest.raises(ConfigError, match="square"):
        _method("rotation", size=(32, 24))


# ---------------------------------------------------------------------------------------- jigsaw
def test_permutations_are_distinct_and_far_apart() -> None:
    for num, dmin in ((24, 7), (100, 6)):
        perms = torch.tensor(select_permutations(num, 9, 0))
        assert perms.shape == (num, 9) and len(perms.unique(dim=0)) == num
        assert (perms.sort(1).values == torch.arange(9)).all()
        assert min_hamming(perms) >= dmin
    assert select_permutations(100, 9, 0) == select_permutations.__wrapped__(100, 9, 0)  # deterministic
    assert select_permutations(100, 9, 0) != select_permutations(100, 9, 1)
    # greedy max-min beats a random choice of the same size by a wide margin
    rand = torch.stack([torch.randperm(9, generator=torch.Generator().manual_seed(i)) for i in range(100)])
    assert min_hamming(rand) < 6


def test_tiles_reassemble_by_the_inverse_permutation() -> None:
    x = torch.randn(2, 3, 30, 30)
    tiles = cut_tiles(x, 3, 10)  # tile = cell and 3 cells fill the image: no crop, no jitter
    assert tiles.shape == (2, 9, 3, 10, 10) and torch.equal(assemble(tiles, 3), x)
    m = _method("jigsaw", modalities=("s2",), size=(30, 30), tile_fraction=1.0, num_permutations=24)
    m.augment = lambda d: d  # no flip/rotation, so the puzzle can be compared with the input
    batch = m.normalize({"s2": torch.randn(4, 12, 30, 30)})
    shuffled, labels = m.make_views(batch)
    inverse = m.permutations[labels].argsort(1)
    restored = torch.take_along_dim(shuffled, inverse[:, :, None, None, None], dim=1)
    assert torch.equal(assemble(restored, 3), batch["s2"])
    assert not torch.equal(assemble(shuffled, 3), batch["s2"])


def test_jigsaw_tiles_have_gaps_and_checks() -> None:
    x = torch.arange(32 * 32, dtype=torch.float32).reshape(1, 1, 32, 32).repeat(64, 1, 1, 1)
    tiles = cut_tiles(x, 3, 7, torch.Generator().manual_seed(0))
    top_left = tiles[:, :, 0, 0, 0]  # flat pixel index of each tile's first pixel
    rows, cols = top_left // 32, top_left % 32
    assert ((rows[:, 3] - rows[:, 0]) >= 7).all() and ((cols[:, 1] - cols[:, 0]) >= 7).all()
    assert len(set((cols[:, 1] - cols[:, 0]).tolist())) > 1  # the gap varies
    m = _method("jigsaw", num_permutations=24)
    assert len(m.hparams["permutations"]) == 24 and m.tile == 7 and m.tile_resize is None
    restored = _method("jigsaw", permutations=m.hparams["permutations"])
    assert torch.equal(restored.permutations, m.permutations)
    with pytest.raises(ConfigError, match="distinct permutations"):
        _method("jigsaw", permutations=[[0, 1, 2, 3, 4, 5, 6, 7, 8]] * 2)
    with pytest.raises(ConfigError, match="too small"):
        _method("jigsaw", size=(5, 5))


# ------------------------------------------------------------------------------- band prediction
def test_band_prediction_input_hides_the_held_out_bands() -> None:
    m = _method("band-prediction")
    m.augment = lambda d: d
    raw = {"s2": torch.randn(2, 12, 16, 16), "s1": torch.randn(2, 2, 16, 16)}
    x, target, valid = m.make_views(m.normalize(raw))
    assert m.held_out == HELD
    assert (x[:, HELD] == 0).all() and torch.equal(target, raw["s2"][:, HELD])
    keep = [i for i in range(12) if i not in HELD]
    assert torch.equal(x[:, keep], raw["s2"][:, keep]) and torch.equal(x[:, 12:], raw["s1"])
    assert (first_conv(m.encoder, 14).weight[:, HELD] == 0).all()
    # the prediction depends on the visible bands only: changing a held-out band of the input changes nothing
    m.eval()
    with torch.no_grad():
        x2 = x.clone()
        x2[:, HELD] = 5.0
        x3 = x.clone()
        x3[:, keep[0]] += 1.0
        assert torch.equal(m.predict(x), m.predict(x2)) and not torch.equal(m.predict(x), m.predict(x3))


def test_band_prediction_loss_ignores_invalid_pixels() -> None:
    m = _method("band-prediction", modalities=("s2",))
    m.augment = lambda d: d
    raw = torch.randn(2, 12, 16, 16)
    raw[0, 3, 2:5, 2:5] = float("nan")  # no data in one band: the whole pixel is invalid
    x, target, valid = m.make_views(m.normalize({"s2": raw}))
    assert not valid[0, 2:5, 2:5].any() and valid.sum() == 2 * 256 - 9
    pred = torch.randn_like(target)
    loss = masked_mse(pred, target, valid)
    literal = sum(float((pred[b, k, i, j] - target[b, k, i, j]) ** 2) for b in range(2) for k in range(5)
                  for i in range(16) for j in range(16) if valid[b, i, j]) / (5 * int(valid.sum()))
    assert loss.item() == pytest.approx(literal, rel=1e-5)
    pred2 = pred.clone()
    pred2[0, :, 2:5, 2:5] += 100.0
    assert masked_mse(pred2, target, valid).item() == pytest.approx(loss.item(), rel=1e-6)


def test_band_prediction_checks() -> None:
    with pytest.raises(ConfigError, match="B13"):
        _method("band-prediction", bands=["B13"])
    with pytest.raises(ConfigError, match="not a pretraining modality"):
        _method("band-prediction", modalities=("s1",))
    assert _method("band-prediction", bands="B11+B12").held_out == [10, 11]


# ------------------------------------------------------------------------------------ inpainting
def test_square_masks() -> None:
    masks = square_masks(50, (32, 32), 16, torch.Generator().manual_seed(0))
    assert masks.shape == (50, 32, 32) and (masks.sum((1, 2)) == 256).all()
    rows, cols = masks.any(2), masks.any(1)
    assert (rows.sum(1) == 16).all() and (cols.sum(1) == 16).all()  # one contiguous 16 x 16 square
    assert len({tuple(r.nonzero()[0].tolist()) for r in rows}) > 1  # at random positions


def test_inpainting_hides_the_square_and_scores_it_only() -> None:
    m = _method("inpainting")
    m.augment = lambda d: d
    assert m.side == 16
    raw = {"s2": torch.randn(3, 12, 32, 32), "s1": torch.randn(3, 2, 32, 32)}
    raw["s1"][1, :, :4] = float("nan")
    x, target, hole, valid = m.make_views(m.normalize(raw))
    assert (x.permute(1, 0, 2, 3)[:, hole] == 0).all()
    assert torch.equal(x.permute(1, 0, 2, 3)[:, ~hole], target.permute(1, 0, 2, 3)[:, ~hole])
    assert not valid[1, :4].any() and valid[0].all()
    pred = m.reconstruct(x)
    assert pred.shape == target.shape
    loss = inpainting_loss(pred, target, hole, valid)
    inside = hole & valid
    literal = ((pred - target) ** 2).permute(1, 0, 2, 3)[:, inside].mean()
    assert loss.item() == pytest.approx(literal.item(), rel=1e-5)
    outside = pred.detach() + 50.0 * (~hole)[:, None]  # any change outside the hole leaves the loss alone
    assert inpainting_loss(outside, target, hole, valid).item() == pytest.approx(loss.item(), rel=1e-6)
    assert inpainting_loss(pred.detach() + 1.0 * hole[:, None], target, hole, valid).item() != pytest.approx(
        loss.item()
    )
    assert inpainting_loss(outside, target, hole, valid, context_weight=0.1).item() > loss.item() + 100
    with pytest.raises(ConfigError, match="area"):
        _method("inpainting", area=1.5)


def test_jigsaw_learns_when_tile_positions_are_visible() -> None:
    """On images whose intensity ramps with position the puzzle is solvable: the loss must drop to ~0.

    (On SimEO's 32 x 32 patches the same method stays at chance; docs/ssl.md reports the measurement.)
    """
    torch.manual_seed(0)
    m = _method("jigsaw", modalities=("s2",), num_permutations=24)
    m.augment = lambda d: d  # a D4 flip would make the ramp's direction ambiguous
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    ramp = (xx + 3 * yy) / 128.0
    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    for _ in range(60):
        x = ramp.expand(64, 12, 32, 32) + 0.3 * torch.randn(64, 12, 32, 32)
        loss, logs = m.loss(m.make_views(m.normalize({"s2": x})))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 and logs["jigsaw_acc"] > 0.9  # chance: loss ln 24 = 3.18, accuracy 1/24
