"""SimEO torch datasets: splits, sample dicts, caching, power plants, scenes and Tile2Vec triplets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from eoreps.data.datasets.base import EODataset
from eoreps.data.datasets.simeo import SimEODataset, SimEOPowerPlants, SimEOScenes, SimEOTriplets
from eoreps.data.simeo import FUEL_TYPES, SIMEO_CLASSES, write_simeo
from eoreps.errors import ConfigError


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_simeo(
        tmp_path_factory.mktemp("simeo") / "d", n=60, seed=2, scenes=2, scene_size=96, power_plants=12
    )


def test_patch_dataset_samples(folder):
    ds = SimEODataset(folder, split="train")
    assert isinstance(ds, EODataset) and ds.synthetic and ds.task == "single" and ds.classes == SIMEO_CLASSES
    assert ds.modalities == ("s2", "s1", "dem", "landcover", "weather", "season", "no2")
    assert ds.band_names["s1"] == ("VV", "VH") and len(ds.band_names["s2"]) == 12
    s = ds[0]
    assert s["s2"].shape == (12, 32, 32) and s["s2"].dtype == torch.float32
    assert s["landcover"].dtype == torch.int64 and s["weather"].shape == (3,) and s["season"].shape == (2,)
    assert s["mask"].shape == (32, 32) and s["mask"].dtype == torch.int64
    assert (
        s["label"].dtype == torch.int64
        and s["multilabel"].shape == (8,)
        and s["target"].dtype == torch.float32
    )
    assert s["cloud"].dtype == torch.bool and s["id"].startswith("simeo-p")
    assert int(s["label"]) == int(torch.bincount(s["mask"].flatten(), minlength=8).argmax())
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["s1"].shape == (4, 2, 32, 32) and batch["label"].shape == (4,)
    assert torch.equal(ds.label_matrix(), torch.stack([ds[i]["label"] for i in range(len(ds))]))
    multi = SimEODataset(folder, split="train", task="multi", modalities=["s1"])
    assert (
        multi.label_matrix().shape == (len(ds), 8)
        and set(multi[0]) >= {"s1", "label"}
        and "s2" not in multi[0]
    )


def test_splits_partition(folder):
    sizes = {
        s: len(SimEODataset(folder, split=s, modalities=["season"]))
        for s in ("train", "val", "test", "shifted")
    }
    assert sum(sizes.values()) == len(SimEODataset(folder, split="all")) == 60
    assert sizes["train"] > sizes["val"] > 0
    ids = [SimEODataset(folder, split=s, modalities=["season"])[0]["id"] for s in ("train", "val", "test")]
    assert len(set(ids)) == 3
    with pytest.raises(ConfigError, match="split"):
        SimEODataset(folder, split="bogus")
    with pytest.raises(ConfigError, match="modality"):
        SimEODataset(folder, modalities=["s3"])
    with pytest.raises(ConfigError, match="root=None"):
        SimEODataset(folder, n=10)


def test_generate_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EOREPS_CACHE", str(tmp_path))
    a = SimEODataset(n=24, seed=1, split="all")
    files = sorted((tmp_path / "simeo").iterdir())
    assert len(files) == 1 and a.root == files[0]
    mtime = (a.root / "meta.json").stat().st_mtime_ns
    b = SimEODataset(n=24, seed=1, split="all")
    assert b.root == a.root and (b.root / "meta.json").stat().st_mtime_ns == mtime  # reused, not regenerated
    assert torch.equal(torch.nan_to_num(a[3]["s2"]), torch.nan_to_num(b[3]["s2"]))


def test_power_plants(folder):
    ds = SimEOPowerPlants(folder, split="all")
    assert len(ds) == 12 and ds.classes == FUEL_TYPES and ds.synthetic
    s = ds[0]
    assert (
        s["s2"].shape == (12, 64, 64) and s["mask"].shape == (64, 64) and torch.equal(s["mask"], s["plume"])
    )
    assert s["target"] == s["power"] and s["label"] == s["fuel"]
    assert ds.label_matrix().shape == (12,)
    with pytest.raises(ConfigError, match="split"):
        SimEOPowerPlants(folder, split="shifted")


def test_scenes_and_triplets(folder):
    sc = SimEOScenes(folder)
    assert len(sc) == 2 and sc[0]["s2"].shape == (12, 96, 96) and sc.synthetic
    tr = SimEOTriplets(50, tile_size=32, neighborhood=16, scenes=sc, seed=0)
    item = tr[0]
    assert set(item) == {"anchor", "neighbor", "distant"}
    assert item["anchor"]["s2"].shape == (12, 32, 32) and item["distant"]["mask"].shape == (32, 32)
    batch = next(iter(DataLoader(tr, batch_size=5)))
    assert batch["neighbor"]["s1"].shape == (5, 2, 32, 32)
    plan = tr.plan
    assert (np.abs(plan[:, 1] - plan[:, 3]) <= 16).all() and (np.abs(plan[:, 2] - plan[:, 4]) <= 16).all()
    assert ((plan[:, 1] != plan[:, 3]) | (plan[:, 2] != plan[:, 4])).all()
    assert (plan[:, 0] != plan[:, 5]).all()

    # Tile2Vec premise: neighbours share more land cover than distant tiles
    def cover(s):
        return torch.bincount(s["mask"].flatten(), minlength=8).float() / s["mask"].numel()

    near = np.mean([(cover(tr[i]["anchor"]) - cover(tr[i]["neighbor"])).abs().sum() for i in range(50)])
    far = np.mean([(cover(tr[i]["anchor"]) - cover(tr[i]["distant"])).abs().sum() for i in range(50)])
    assert near < 0.7 * far, (near, far)
    again = SimEOTriplets(50, tile_size=32, neighborhood=16, scenes=sc, seed=0)
    assert np.array_equal(again.plan, tr.plan)


def test_patches_and_plants_share_loading_and_check_task_before_loading(folder, tmp_path):
    # a bad task is refused before any data are read (the folder below does not exist)
    with pytest.raises(ConfigError, match="'single' or 'multi', got 'bogus'"):
        SimEODataset(tmp_path / "missing", task="bogus")
    with pytest.raises(ConfigError):
        SimEOPowerPlants(folder, n=5)  # root and n together
    multi = SimEODataset(folder, split="all", modalities=["s2"], task="multi")
    plants = SimEOPowerPlants(folder, split="all", modalities=["s2", "weather"])
    assert multi.modalities == ("s2",) and plants.modalities == ("s2", "weather")
    assert len(multi) == 60 and len(plants) == 12
    assert multi.label_matrix().shape == (60, 8) and plants.label_matrix().shape == (12,)
    assert set(plants.band_names) == {"s2", "weather"}
