"""SimEO generator: determinism, units, physics (spatial correlation, clouds, speckle, noise), targets,
shifted split, folder format. Small sizes only (the whole file runs in seconds)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from eoreps.data.simeo import (
    FUEL_TYPES,
    SIMEO_CLASSES,
    SPLITS,
    SimEOParams,
    generate_patches,
    generate_power_plants,
    generate_scenes,
    is_simeo_folder,
    load_simeo,
    write_simeo,
)
from eoreps.data.simeo.fields import gamma_unit_mean, gaussian_field, normal
from eoreps.errors import ConfigError, DataError

K = len(SIMEO_CLASSES)


@pytest.fixture(scope="module")
def patches() -> dict[str, np.ndarray]:
    return generate_patches(256, seed=11)


def test_classes_and_constants():
    assert SIMEO_CLASSES == (
        "forest",
        "shrubland",
        "grassland",
        "wetland",
        "cropland",
        "urban",
        "barren",
        "water",
    )
    assert SPLITS == ("train", "val", "test", "shifted")
    assert len(FUEL_TYPES) >= 3


def test_deterministic_from_seed():
    a, b = generate_patches(12, seed=5), generate_patches(12, seed=5)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    c = generate_patches(12, seed=6)
    assert not np.array_equal(np.nan_to_num(a["s2"]), np.nan_to_num(c["s2"]))


def test_shapes_dtypes_units(patches):
    n, s = 256, SimEOParams().patch_size
    expect = {
        "s2": ((n, 12, s, s), np.float32),
        "s1": ((n, 2, s, s), np.float32),
        "dem": ((n, 1, s, s), np.float32),
        "landcover": ((n, 1, s, s), np.int64),
        "weather": ((n, 3), np.float32),
        "season": ((n, 2), np.float32),
        "no2": ((n, 1, s, s), np.float32),
        "mask": ((n, s, s), np.int64),
        "label": ((n,), np.int64),
        "multilabel": ((n, K), np.float32),
        "target": ((n,), np.float32),
        "target_std": ((n,), np.float32),
        "region": ((n,), np.int64),
        "doy": ((n,), np.int64),
        "cloud": ((n, s, s), np.bool_),
        "split": ((n,), np.int8),
    }
    for key, (shape, dtype) in expect.items():
        assert patches[key].shape == shape, key
        assert patches[key].dtype == dtype, key
    s2 = patches["s2"]
    assert 0 <= np.nanmin(s2) and np.nanmax(s2) <= SimEOParams().s2_saturation
    assert 1000 < np.nanmean(s2) < 3500  # L2A reflectance x 1e4, BigEarthNet-like level
    assert -40 < np.nanmin(patches["s1"]) and np.nanmax(patches["s1"]) < 25
    assert -25 < np.nanmedian(patches["s1"][:, 0]) < -3 and np.nanmedian(patches["s1"][:, 1]) < np.nanmedian(
        patches["s1"][:, 0]
    )
    assert -200 < patches["dem"].min() and patches["dem"].max() < 4000
    t, rh, wind = patches["weather"].T
    assert -30 < t.min() and t.max() < 45 and 5 <= rh.min() and rh.max() <= 100 and wind.min() > 0
    np.testing.assert_allclose((patches["season"] ** 2).sum(1), 1.0, atol=1e-5)
    assert 1 <= patches["doy"].min() and patches["doy"].max() <= 365
    assert 0 < patches["no2"].min() and patches["no2"].max() < 500
    assert set(np.unique(patches["mask"])) <= set(range(K)) and set(np.unique(patches["landcover"])) <= set(
        range(K)
    )
    assert set(np.unique(patches["split"])) <= set(range(len(SPLITS)))


def test_landcover_spatially_correlated(patches):
    m = patches["mask"]
    same_neighbour = (m[:, :, 1:] == m[:, :, :-1]).mean()
    cover = patches["cover"].mean(0)
    chance = float((cover**2).sum())  # two random pixels of the population agree this often
    assert same_neighbour > 0.85 and chance < 0.3, (same_neighbour, chance)
    # the auxiliary map is informative but not the truth
    agree = (patches["landcover"][:, 0] == m).mean()
    assert 0.6 < agree < 0.95, agree


def test_clouds_affect_s2_only(patches):
    cloud, mask = patches["cloud"], patches["mask"]
    assert 0.03 < cloud.mean() < 0.5
    blue, vv = patches["s2"][:, 1], patches["s1"][:, 0]
    for k in (
        SIMEO_CLASSES.index("forest"),
        SIMEO_CLASSES.index("cropland"),
        SIMEO_CLASSES.index("grassland"),
    ):
        under, clear = (mask == k) & cloud, (mask == k) & ~cloud
        if under.sum() < 200:
            continue
        # clouds (and their shadows) change S2 a lot ...
        assert abs(np.nanmean(blue[under]) - np.nanmean(blue[clear])) > 300
        # ... but S1 sees through them: the backscatter distribution is unchanged
        assert abs(np.nanmean(vv[under]) - np.nanmean(vv[clear])) < 0.8, SIMEO_CLASSES[k]
    thick = patches["cloud"] & (patches["s2"][:, 1] > 3000)
    assert thick.any()


def test_speckle_is_multiplicative_gamma():
    p = dataclasses.replace(SimEOParams(), s1_texture_sd_db=0.0, s1_terrain_gain_db=0.0, s1_nesz_db=-60.0)
    a = generate_patches(64, seed=3, params=p)
    lin = 10 ** (a["s1"][:, 0] / 10)  # VV, linear power
    groups = {"dark": [], "bright": []}
    for i in range(len(lin)):
        for k in range(K):
            sel = (a["mask"][i] == k) & np.isfinite(lin[i])
            if sel.sum() >= 150:
                v = lin[i][sel]
                groups["bright" if v.mean() > 10 ** (-0.9) else "dark"].append(v / v.mean())
    looks = p.s1_looks
    cvs = {}
    for name, vals in groups.items():
        assert vals, name
        x = np.concatenate(vals)
        cvs[name] = x.var()
        # gamma(L, 1/L): variance 1/L, skewness 2/sqrt(L)
        assert x.var() == pytest.approx(1 / looks, rel=0.15), name
        skew = ((x - 1) ** 3).mean() / x.std() ** 3
        assert skew == pytest.approx(2 / np.sqrt(looks), rel=0.3), name
    # multiplicative: the coefficient of variation does not depend on the mean backscatter
    assert cvs["dark"] == pytest.approx(cvs["bright"], rel=0.2)


def test_samplers():
    rng = np.random.default_rng(0)
    x = normal(rng, (200_000,))
    assert abs(x.mean()) < 0.01 and x.std() == pytest.approx(1.0, abs=0.01)
    g = gamma_unit_mean(rng, (200_000,), 4.4)
    assert g.mean() == pytest.approx(1.0, abs=0.01) and g.var() == pytest.approx(1 / 4.4, rel=0.03)
    f = gaussian_field(rng, (400, 48, 48), 5.0)
    assert f.std() == pytest.approx(1.0, abs=0.03)
    lag = (f[:, :, 5:] * f[:, :, :-5]).mean()  # correlation exp(-d^2 / (4 s^2)) = exp(-0.25)
    assert lag == pytest.approx(np.exp(-0.25), abs=0.05)


def test_nodata_small_but_present(patches):
    frac = np.isnan(patches["s2"]).mean()
    assert 1e-4 < frac < 0.05, frac
    # no-data is per pixel across all bands
    nan_any, nan_all = np.isnan(patches["s2"]).any(1), np.isnan(patches["s2"]).all(1)
    np.testing.assert_array_equal(nan_any, nan_all)


def test_labels_consistent_with_mask(patches):
    n = len(patches["label"])
    counts = np.stack([np.bincount(m.ravel(), minlength=K) for m in patches["mask"]])
    np.testing.assert_array_equal(patches["label"], counts.argmax(1))
    cover = counts / counts.sum(1, keepdims=True)
    thr = SimEOParams().multilabel_threshold
    np.testing.assert_array_equal(patches["multilabel"], (cover >= thr).astype(np.float32))
    assert patches["multilabel"][np.arange(n), patches["label"]].all()
    assert 1.3 < patches["multilabel"].sum(1).mean() < 4  # genuinely multi-label
    assert len(np.unique(patches["label"])) == K


def test_target_heteroscedastic(patches):
    std, mean, y = patches["target_std"], patches["target_mean"], patches["target"]
    assert std.max() / std.min() > 3
    z = (y - mean) / std
    assert z.std() == pytest.approx(1.0, abs=0.15) and abs(z.mean()) < 0.2
    lo, hi = std < np.median(std), std >= np.median(std)
    assert (y - mean)[hi].std() > 1.5 * (y - mean)[lo].std()
    # the target depends on the inputs: urban cover and the NO2 column
    urban = patches["cover"][:, SIMEO_CLASSES.index("urban")]
    assert np.corrcoef(urban, y)[0, 1] > 0.3
    assert np.corrcoef(patches["no2"][:, 0].mean((1, 2)), y)[0, 1] > 0.3


def test_shifted_split_differs():
    p = SimEOParams()
    a = generate_patches(400, seed=4, params=p)
    shifted = a["split"] == SPLITS.index("shifted")
    train = a["split"] == SPLITS.index("train")
    assert (a["region"][shifted] == p.shifted_region).all() and (
        a["region"][~shifted] != p.shifted_region
    ).all()
    assert 0.08 < shifted.mean() < 0.25
    tv = 0.5 * np.abs(a["cover"][shifted].mean(0) - a["cover"][train].mean(0)).sum()
    assert tv > 0.2, tv
    assert a["weather"][shifted, 1].mean() < a["weather"][train, 1].mean() - 10  # drier climate
    assert a["dem"][shifted].mean() > a["dem"][train].mean() + 300  # highland
    counts = np.bincount(a["split"][~shifted], minlength=3)[:3] / (~shifted).sum()
    np.testing.assert_allclose(counts, p.split_fractions, atol=0.02)


def test_s2_separates_classes_but_not_perfectly(patches):
    spec = np.log(np.nanmean(patches["s2"].reshape(len(patches["label"]), 12, -1), axis=2) + 1)
    lab = patches["label"]
    tr = np.arange(len(lab)) % 2 == 0
    mu = np.stack([spec[tr & (lab == k)].mean(0) for k in range(K)])
    sd = spec[tr].std(0)
    pred = (((spec[:, None] - mu[None]) / sd) ** 2).sum(-1).argmin(-1)
    acc = (pred[~tr] == lab[~tr]).mean()
    assert 2 / K < acc < 0.95, acc


def test_scenes_neighbours_similar():
    sc = generate_scenes(3, size=128, seed=2)
    assert sc["s2"].shape == (3, 12, 128, 128) and sc["mask"].shape == (3, 128, 128)
    t = 32

    def cover(i: int, y: int, x: int) -> np.ndarray:
        return np.bincount(sc["mask"][i, y:y + t, x:x + t].ravel(), minlength=K) / t**2

    near, far = [], []
    for i in range(3):
        for y, x in ((0, 0), (0, 64), (64, 0), (64, 64), (32, 32)):
            a = cover(i, y, x)
            near.append(np.abs(a - cover(i, y + 16 if y < 96 else y - 16, x)).sum())
            far.append(np.abs(a - cover((i + 1) % 3, 96 - y, 96 - x)).sum())
    assert np.mean(near) < 0.7 * np.mean(far), (np.mean(near), np.mean(far))


def test_power_plants():
    pp = generate_power_plants(48, seed=1)
    n, s = 48, SimEOParams().plant_size
    assert (
        pp["s2"].shape == (n, 12, s, s) and pp["plume"].shape == (n, s, s) and pp["plume"].dtype == np.int64
    )
    assert pp["power"].dtype == np.float32 and pp["fuel"].dtype == np.int64
    assert set(np.unique(pp["fuel"])) <= set(range(len(FUEL_TYPES)))
    plume = pp["plume"].reshape(n, -1).mean(1)
    assert (plume[pp["power"] == 0] == 0).all()
    on = pp["power"] > 0
    assert plume[on].max() > 0.01
    assert np.corrcoef(np.sqrt(pp["power"]), plume)[0, 1] > 0.3
    assert (pp["split"] != SPLITS.index("shifted")).all()


def test_params_round_trip_and_validation():
    p = SimEOParams()
    q = SimEOParams.from_dict(json.loads(json.dumps(p.to_dict())))
    assert q == p and q.digest() == p.digest()
    with pytest.raises(ConfigError, match="unknown"):
        SimEOParams.from_dict({"nonsense": 1})
    with pytest.raises(ConfigError, match="region_weights"):
        SimEOParams(region_weights=(1.0,))


def test_folder_round_trip(tmp_path):
    out = write_simeo(tmp_path / "simeo", n=20, seed=3, scenes=1, scene_size=64, power_plants=3)
    assert is_simeo_folder(out) and not is_simeo_folder(tmp_path)
    arrays, meta = load_simeo(out)
    assert meta["synthetic"] is True and meta["seed"] == 3 and meta["version"] >= 1
    assert sum(meta["split_counts"].values()) == 20
    ref = generate_patches(20, seed=3)
    for k, v in ref.items():
        assert isinstance(arrays[k], np.memmap), k
        np.testing.assert_array_equal(np.asarray(arrays[k]), v, err_msg=k)
    assert SimEOParams.from_dict(meta["params"]) == SimEOParams()
    sc, _ = load_simeo(out, part="scenes")
    assert sc["s2"].shape == (1, 12, 64, 64)
    pp, _ = load_simeo(out, part="power_plants")
    assert pp["plume"].shape[0] == 3
    import pandas as pd

    idx = pd.read_parquet(out / "patches" / "index.parquet")
    assert len(idx) == 20 and {"id", "split", "label", "region", "doy", "target"} <= set(idx.columns)
    np.testing.assert_array_equal(idx["label"].to_numpy(), ref["label"])
    assert list(out.parent.iterdir()) == [out]  # no temporary folders left behind


def test_folder_errors(tmp_path):
    out = write_simeo(tmp_path / "s", n=4, seed=0)
    (out / "patches" / "s1.npy").write_bytes(b"garbage")
    with pytest.raises(DataError, match="s1.npy"):
        load_simeo(out)
    (out / "meta.json").unlink()
    with pytest.raises(DataError, match="meta.json"):
        load_simeo(out)
    with pytest.raises(DataError, match="not found"):
        load_simeo(tmp_path / "absent")
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("mine")
    with pytest.raises(DataError, match="not a SimEO folder"):
        write_simeo(other, n=2)
    out2 = write_simeo(tmp_path / "t", n=4, seed=0)
    np.save(out2 / "patches" / "label.npy", np.zeros(3, np.int64))
    with pytest.raises(DataError, match="label.npy"):
        load_simeo(out2)


def test_every_parameter_documented():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "simeo.md").read_text()
    assert "SimEO is synthetic" in doc
    missing = [f.name for f in dataclasses.fields(SimEOParams) if f"`{f.name}`" not in doc]
    assert not missing, f"docs/simeo.md lacks parameters {missing}"
