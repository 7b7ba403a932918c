"""The generic paired-GeoTIFF folder on seeded fakes written by make_geotiff_folder.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from eoreps.data.datasets.base import IGNORE_INDEX
from eoreps.data.datasets.geotiff_folder import GeoTiffFolder, is_geotiff_folder
from eoreps.data.modalities import S2_L2A_BANDS
from eoreps.errors import ConfigError, DataError


def _gen():
    spec = importlib.util.spec_from_file_location("make_geotiff_folder", Path(__file__).with_name("make_geotiff_folder.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make(tmp_path: Path, **kw) -> Path:
    return _gen().write_geotiff_folder(tmp_path / "gt", **kw)


def test_single_label(tmp_path):
    root = make(tmp_path, n=8, side=16, task="single")
    assert is_geotiff_folder(root) and not is_geotiff_folder(tmp_path)
    ds = GeoTiffFolder(root)
    assert len(ds) == 8 and ds.task == "single"
    assert ds.modalities == ("dem", "s1", "s2")
    assert ds.classes == ("crops", "forest", "urban", "water")  # sorted names without classes.txt
    assert ds.band_names["s2"] == S2_L2A_BANDS and ds.band_names["s1"] == ("VV", "VH")
    assert ds.band_names["dem"] == ("elevation",)
    s = ds[1]
    assert s["s2"].shape == (12, 16, 16) and s["s2"].dtype == torch.float32
    assert s["label"].dtype == torch.int64 and ds.classes[int(s["label"])] == "water"
    with rasterio.open(root / "s2" / "patch_001.tif") as f:
        assert torch.equal(s["s2"], torch.from_numpy(f.read().astype(np.float32)))  # physical units kept
    dem = ds[0]["dem"]
    assert torch.isnan(dem[0, :2, :2]).all() and not torch.isnan(dem[0, 2:, 2:]).any()  # no-data -> NaN
    assert torch.equal(ds.label_matrix(), torch.stack([ds[i]["label"] for i in range(8)]))
    assert len(GeoTiffFolder(root, split="train")) == 4
    assert GeoTiffFolder(root, modalities=["s1"])[0].keys() == {"id", "s1", "label"}


def test_classes_file_and_integer_labels(tmp_path):
    root = make(tmp_path, n=4, task="single")
    (root / "classes.txt").write_text("forest\nwater\nurban\ncrops\n")
    ds = GeoTiffFolder(root)
    assert ds.classes == ("forest", "water", "urban", "crops") and int(ds[2]["label"]) == 2
    csv = root / "labels.csv"
    csv.write_text(csv.read_text().replace("forest", "0").replace("water", "1").replace("urban", "2").replace("crops", "3"))
    assert [int(ds2["label"]) for ds2 in GeoTiffFolder(root)] == [0, 1, 2, 3]


@pytest.mark.parametrize("task", ["multi", "columns"])
def test_multi_label(tmp_path, task):
    root = make(tmp_path, n=8, task=task)
    ds = GeoTiffFolder(root)
    if task == "multi":  # names inferred from what occurs: "crops" (bit 3) never does with 8 samples
        assert ds.classes == ("forest", "urban", "water")
        (root / "classes.txt").write_text("forest\nwater\nurban\ncrops\n")
        ds = GeoTiffFolder(root)
    assert ds.task == "multi" and ds.classes == ("forest", "water", "urban", "crops")
    lm = ds.label_matrix()
    assert lm.shape == (8, 4) and lm.dtype == torch.float32
    assert lm.sum() == sum(bin(i).count("1") for i in range(8))
    assert torch.equal(ds[5]["multilabel"], lm[5])


def test_regression_mask_and_resize(tmp_path):
    ds = GeoTiffFolder(make(tmp_path, n=4, task="regression", mask=True), size=8)
    assert ds.task == "regression"
    s = ds[0]
    assert s["target"].dtype == torch.float32 and s["s2"].shape == (12, 8, 8)
    assert s["mask"].shape == (8, 8) and s["mask"].dtype == torch.int64
    assert set(s["mask"].unique().tolist()) <= {0, 1, 2, 3, IGNORE_INDEX}


def test_errors(tmp_path):
    root = make(tmp_path, n=4, side=16)
    (root / "s1" / "patch_002.tif").unlink()
    with pytest.raises(DataError, match=r"s1/patch_002.tif: file is missing"):
        GeoTiffFolder(root)
    with pytest.raises(ConfigError, match="modality 'dem2'"):
        GeoTiffFolder(root, modalities=["dem2"])
    ds = GeoTiffFolder(root, modalities=["s2", "dem"])
    victim = root / "dem" / "patch_001.tif"
    victim.write_bytes(victim.read_bytes()[:400])
    with pytest.raises(DataError, match=r"dem/patch_001.tif: corrupt or truncated GeoTIFF"):
        ds[1]
    _gen()._write(root / "dem" / "patch_003.tif", np.zeros((1, 12, 16), np.float32))
    with pytest.raises(DataError, match=r"dem/patch_003.tif: shape \(12, 16\) differs"):
        ds[3]
    with pytest.raises(ConfigError, match="split 'holdout' not found"):
        GeoTiffFolder(root, split="holdout", modalities=["s2"])
    (root / "labels.csv").write_text("name,label\na,1\n")
    with pytest.raises(DataError, match="no 'id' column"):
        GeoTiffFolder(root)
