"""Band statistics: exact streaming moments with NaN, caching, normalisation and NaN filling."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from eoreps.data.stats import BandStats, Normalizer, cached_stats, compute_stats, stats_from_arrays
from eoreps.errors import ConfigError, DataError


class _Toy(torch.utils.data.Dataset):
    """Random S2-like (3 bands, 8x8) and weather-like vectors with NaN holes; counts reads."""

    modalities = ("s2", "weather", "landcover")
    band_names = {"s2": ("a", "b", "c"), "weather": ("t", "h", "w")}

    def __init__(self, n: int = 40, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        scale = np.array([100.0, 2000.0, 0.5])[:, None, None]
        self.s2 = (rng.normal(size=(n, 3, 8, 8)) * scale + np.array([500.0, 3000.0, -2.0])[:, None, None])
        self.s2[rng.random(self.s2.shape) < 0.1] = np.nan
        self.s2[0, 1] = np.nan  # a fully missing band in one sample
        self.weather = rng.normal(10, 5, size=(n, 3))
        self.weather[min(3, n - 1), 2] = np.nan
        self.landcover = rng.integers(0, 8, size=(n, 1, 8, 8))
        self.reads = 0

    def __len__(self) -> int:
        return len(self.s2)

    def __getitem__(self, i: int) -> dict:
        self.reads += 1
        return {"s2": torch.tensor(self.s2[i], dtype=torch.float32),
                "weather": torch.tensor(self.weather[i], dtype=torch.float32),
                "landcover": torch.tensor(self.landcover[i]), "label": torch.tensor(i % 3), "id": str(i)}


def test_matches_numpy_nanmean_nanstd():
    ds = _Toy()
    stats = compute_stats(ds)
    assert stats.modalities == ("s2", "weather")  # categorical land cover is skipped
    ref = ds.s2.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(stats.mean["s2"], np.nanmean(ref, axis=(0, 2, 3)), rtol=1e-10)
    np.testing.assert_allclose(stats.std["s2"], np.nanstd(ref, axis=(0, 2, 3)), rtol=1e-9)
    np.testing.assert_array_equal(stats.count["s2"], np.isfinite(ref).sum(axis=(0, 2, 3)))
    w = ds.weather.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(stats.mean["weather"], np.nanmean(w, 0), rtol=1e-10)
    np.testing.assert_allclose(stats.std["weather"], np.nanstd(w, 0), rtol=1e-9)
    assert stats.bands["s2"] == ("a", "b", "c")


def test_in_memory_arrays_match_streaming():
    ds = _Toy()
    ref = compute_stats(ds, ["s2", "weather"])
    fast = stats_from_arrays({"s2": torch.tensor(ds.s2, dtype=torch.float32),
                              "weather": torch.tensor(ds.weather, dtype=torch.float32)}, chunk=7)
    for m in ("s2", "weather"):
        np.testing.assert_allclose(fast.mean[m], ref.mean[m], rtol=1e-10)
        np.testing.assert_allclose(fast.std[m], ref.std[m], rtol=1e-9)
        assert fast.count[m] == ref.count[m]


def test_max_samples_subset_is_seeded():
    ds = _Toy()
    a = compute_stats(ds, ["s2"], max_samples=10, seed=1)
    b = compute_stats(ds, ["s2"], max_samples=10, seed=1)
    c = compute_stats(ds, ["s2"], max_samples=10, seed=2)
    assert a.mean == b.mean and a.mean != c.mean and a.num_samples == 10


def test_cache_reused_and_invalidated(tmp_path):
    ds = _Toy()
    first = cached_stats(ds, tmp_path / "stats.json")
    reads = ds.reads
    assert len(ds) <= reads <= len(ds) + 3  # one pass + the 3-sample content fingerprint
    second = cached_stats(ds, tmp_path / "stats.json")
    assert ds.reads - reads <= 3  # read from the cache: only the fingerprint samples, no second pass
    assert second.mean == first.mean and second.std == first.std
    # a directory cache names the file by fingerprint; another dataset length gets another file
    cached_stats(ds, tmp_path, modalities=["s2"])
    cached_stats(_Toy(n=20), tmp_path, modalities=["s2"])
    assert len(list(tmp_path.glob("band_stats_*.json"))) == 2
    # same class and length, different content: another cache entry, never the wrong statistics
    other = _Toy()
    other.s2 = other.s2 + 100.0
    cached_stats(other, tmp_path, modalities=["s2"])
    assert len(list(tmp_path.glob("band_stats_*.json"))) == 3
    # a file computed on another dataset is recomputed, a corrupt one too
    with pytest.warns(UserWarning, match="another dataset"):
        cached_stats(_Toy(n=20), tmp_path / "stats.json")
    (tmp_path / "stats.json").write_text("{not json")
    with pytest.warns(UserWarning, match="recomputing"):
        again = cached_stats(ds, tmp_path / "stats.json")
    assert again.mean == first.mean
    assert json.loads((tmp_path / "stats.json").read_text())["modalities"]["s2"]["bands"] == ["a", "b", "c"]


def test_normalizer_standardises_fills_and_flags():
    ds = _Toy()
    stats = compute_stats(ds)
    norm = Normalizer(stats)
    batch = {
        "s2": torch.tensor(ds.s2, dtype=torch.float32),
        "weather": torch.tensor(ds.weather, dtype=torch.float32),
        "label": torch.arange(len(ds)),
    }
    out = norm(batch)
    assert out["label"] is batch["label"] and torch.isnan(batch["s2"]).any()  # input untouched
    x = out["s2"]
    assert x.dtype == torch.float32 and torch.isfinite(x).all()
    finite = torch.isfinite(batch["s2"])
    vals = [x[:, c][finite[:, c]].double() for c in range(3)]
    for v in vals:
        assert abs(v.mean().item()) < 1e-4 and abs(v.std(unbiased=False).item() - 1) < 1e-4
    assert torch.all(x[~finite] == 0.0)
    assert out["valid_s2"].shape == (len(ds), 8, 8)
    assert torch.equal(out["valid_s2"], finite.all(1))
    assert (
        out["valid_weather"].shape == (len(ds),) and not out["valid_weather"][3] and out["valid_weather"][4]
    )
    # the same on one sample, with a custom fill
    one = Normalizer(stats, fill=-5.0)(ds[0])
    assert one["s2"].shape == (3, 8, 8) and one["valid_s2"].shape == (8, 8)
    assert torch.all(one["s2"][1] == -5.0) and not one["valid_s2"].any()
    assert one["weather"].shape == (3,) and one["valid_weather"].shape == ()


def test_landcover_one_hot_and_fallback():
    ds = _Toy()
    s = ds[1]
    s["landcover"][0, 0, 0] = 9  # out of range -> invalid
    out = Normalizer(compute_stats(ds))(s)
    lc = out["landcover"]
    assert lc.shape == (8, 8, 8) and lc.dtype == torch.float32
    assert lc[:, 0, 0].sum() == 0 and not out["valid_landcover"][0, 0]
    assert torch.equal(lc[:, 1:].argmax(0), s["landcover"][0, 1:]) and torch.all(lc[:, 1:].sum(0) == 1)
    # registered modality without statistics: error unless fallback is asked for
    with pytest.raises(ConfigError, match="fallback"):
        Normalizer(BandStats.defaults(["weather"]))({"s1": torch.zeros(2, 4, 4)})
    out = Normalizer(BandStats.defaults(["weather"]), fallback=True)({"s1": torch.full((2, 4, 4), -12.62)})
    assert torch.allclose(out["s1"][0], torch.zeros(4, 4), atol=1e-6)


def test_errors():
    stats = compute_stats(_Toy(), ["s2"])
    with pytest.raises(DataError, match="bands"):
        Normalizer(stats)({"s2": torch.zeros(4, 8, 8)})
    with pytest.raises(DataError, match="no 's1'"):
        compute_stats(_Toy(), ["s1"])
    ds = _Toy(n=2)
    ds.s2[:, 2] = np.nan
    with pytest.raises(DataError, match="no finite value"):
        compute_stats(ds, ["s2"])
    with pytest.raises(DataError, match="malformed"):
        BandStats.from_dict({"modalities": {"s2": {"mean": [0.0]}}})


@pytest.mark.realdata
def test_real_bigearthnet_stats_normalise_and_augment(shared_data):
    from eoreps.data.datasets.bigearthnet_npz import BigEarthNetNpz
    from eoreps.transforms import Compose, ModalityDropout, RandomFlipRotate, RandomResizedCrop, TwoViews

    path = shared_data / "bigearthnet" / "ben_s1s2_real.npz"
    s1 = BigEarthNetNpz(path, modalities=["s1"])  # native 120 x 120 grid: no resampling
    stats = compute_stats(s1)
    raw = np.load(path)["s1_vv_vh_db"].astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(stats.mean["s1"], np.nanmean(raw, axis=(0, 2, 3)), rtol=1e-9)
    np.testing.assert_allclose(stats.std["s1"], np.nanstd(raw, axis=(0, 2, 3)), rtol=1e-8)
    assert stats.bands["s1"] == ("VV", "VH")

    ds = BigEarthNetNpz(path, size=32)
    both = compute_stats(ds, max_samples=20, seed=0)
    batch = {k: torch.stack([ds[i][k] for i in range(16)]) for k in ("s2", "s1", "multilabel")}
    norm = Normalizer(both)(batch)
    assert norm["s2"].shape == (16, 12, 32, 32) and norm["valid_s2"].shape == (16, 32, 32)
    assert abs(norm["s2"].mean().item()) < 1.0
    aug = TwoViews(Compose([RandomFlipRotate(), RandomResizedCrop(32), ModalityDropout(0.2)]))
    v1, v2 = aug(norm, generator=torch.Generator().manual_seed(0))
    assert v1["s2"].shape == v2["s2"].shape == (16, 12, 32, 32) and torch.isfinite(v1["s1"]).all()
