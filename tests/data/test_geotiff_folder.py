"""The generic paired-GeoTIFF folder on seeded fakes written by make_geotiff_folder.py."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from eoreps.data.datasets.base import IGNORE_INDEX
from eoreps.data.datasets.geotiff_folder import GeoTiffFolder, is_geotiff_folder
from eoreps.data.modalities import S2_L2A_BANDS
from eoreps.errors import ConfigError, DataError

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_geotiff_folder as gen  # noqa: E402


def make(tmp_path: Path, **kw) -> Path:
    return gen.write_geotiff_folder(tmp_path / "gt", **kw)


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
    csv.write_text(
        csv.read_text()
        .replace("forest", "0")
        .replace("water", "1")
        .replace("urban", "2")
        .replace("crops", "3")
    )
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
    gen._write(root / "dem" / "patch_003.tif", np.zeros((1, 12, 16), np.float32))
    with pytest.raises(DataError, match=r"dem/patch_003.tif: shape \(12, 16\) differs"):
        ds[3]
    with pytest.raises(ConfigError, match="split 'holdout' not found"):
        GeoTiffFolder(root, split="holdout", modalities=["s2"])
    (root / "labels.csv").write_text("key,label\na,1\n")
    with pytest.raises(
        DataError, match=r"labels.csv: no id column \(id/sample_id/patch_id/name\).*id_column=NAME"
    ):
        GeoTiffFolder(root)


def test_classes_fixed_for_all_splits(tmp_path):
    """Text labels: every split maps a name to the same index (classes from all rows, not the split's)."""
    root = make(tmp_path, n=8, task="single")  # train holds forest+water only, val urban, test crops
    names = {}
    for split in ("train", "val", "test"):
        ds = GeoTiffFolder(root, split=split)
        assert ds.classes == ("crops", "forest", "urban", "water")
        names.update({s["id"]: ds.classes[int(s["label"])] for s in ds})
    assert names == {f"patch_{i:03d}": ("forest", "water", "urban", "crops")[i % 4] for i in range(8)}
    multi = make(tmp_path / "m", n=8, task="multi")
    assert GeoTiffFolder(multi, split="train").classes == GeoTiffFolder(multi, split="test").classes == (
        "forest", "urban", "water")


def test_empty_label_refused(tmp_path):
    root = make(tmp_path, n=4, task="single")
    csv = root / "labels.csv"
    lines = csv.read_text().splitlines()
    lines[3] = lines[3].replace("urban", "")
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataError, match=r"labels.csv: row 3 \(line 4, sample 'patch_002'\) has an empty label"
    ):
        GeoTiffFolder(root)


def test_sparse_mask_codes(tmp_path):
    root = make(tmp_path, n=4, mask=True, mask_codes=(0, 1, 2, 3, 4, 8), mask_nodata=255)
    ds = GeoTiffFolder(root)
    assert ds.mask_classes == ("0", "1", "2", "3", "4", "8")  # codes found, 255 = no-data left out
    with rasterio.open(root / "mask" / "patch_001.tif") as f:
        raw = f.read(1).astype(np.int64)
    m = ds[1]["mask"].numpy()
    assert (m[:2, :2] == IGNORE_INDEX).all() and m.max() == 5
    assert (m[raw == 8] == 5).all() and (m[raw == 4] == 4).all()
    rep = ds.mask_pixel_report()
    assert rep["ignored_share"] == pytest.approx(4 / 256) and sum(rep["shares"].values()) == pytest.approx(
        1 - 4 / 256
    )
    # a class map: 8 is unknown to it -> ignored; contiguous indices in the map's order
    (root / "mask_classes.txt").write_text("# code name\n0 water\n1,tree\n2 grass\n3 crops\n4 built\n")
    ds = GeoTiffFolder(root)
    assert ds.mask_classes == ("water", "tree", "grass", "crops", "built")
    assert (ds[1]["mask"].numpy()[raw == 8] == IGNORE_INDEX).all()
    assert ds.mask_pixel_report()["ignored_pixels"] == 4 * 4 + int(
        sum((ds2 == 8).sum() for ds2 in _raw_masks(root))
    )
    ds = GeoTiffFolder(root, mask_classes="8:built-up,0:water", ignore_index=None)
    assert ds.mask_classes == ("built-up", "water") and (ds[1]["mask"].numpy()[raw == 8] == 0).all()
    with pytest.raises(ConfigError, match="^mask_classes='tree': no such file"):
        GeoTiffFolder(root, mask_classes="tree")
    (tmp_path / "wc.csv").write_text("8,built-up\n4,built\n")
    assert GeoTiffFolder(root, mask_classes=str(tmp_path / "wc.csv")).mask_classes == ("built-up", "built")


def _raw_masks(root):
    for p in sorted((root / "mask").glob("*.tif")):
        with rasterio.open(p) as f:
            yield f.read(1)


def test_mask_scan_once_per_folder(tmp_path, monkeypatch):
    from eoreps.data.datasets import _mask_codes

    root = make(tmp_path, n=8, mask=True, mask_codes=(10, 20, 80))
    calls = []
    real = _mask_codes._read_codes
    monkeypatch.setattr(_mask_codes, "_read_codes", lambda p: calls.append(p) or real(p))
    classes = {s: GeoTiffFolder(root, split=s).mask_classes for s in ("train", "val", "test")}
    assert classes == {s: ("10", "20", "80") for s in classes} and len(calls) == 8  # every mask read once


def test_nodata_sample(tmp_path):
    root = make(tmp_path, n=8, empty_s1=(2,))
    ds = GeoTiffFolder(root)
    assert ds.nodata_samples() == [("patch_002", "s1")]
    with pytest.raises(DataError, match=r"s1/patch_002.tif: every pixel is no-data .*skip_nodata=True"):
        ds[2]
    ds = GeoTiffFolder(root, skip_nodata=True)
    assert len(ds) == 7 and "patch_002" not in ds.ids and ds.num_skipped_nodata == 1
    assert ds.classes[int(ds[2]["label"])] == "crops"


def test_id_column_and_automatic_split(tmp_path):
    root = make(tmp_path, n=40, side=4, task="single", id_header="sample_id", split=False)
    opened = {s: GeoTiffFolder(root, split=s, split_seed=3) for s in ("train", "val", "test")}
    ids = {s: set(d.ids) for s, d in opened.items()}
    assert sum(map(len, ids.values())) == 40 and not (ids["train"] & ids["val"] or ids["train"] & ids["test"]
                                                      or ids["val"] & ids["test"])
    assert {s: len(v) for s, v in ids.items()} == {"train": 28, "val": 6, "test": 6}
    for d in opened.values():  # stratified: every class in every split
        assert set(d.label_matrix().tolist()) == {0, 1, 2, 3}
    assert opened["val"].split_info == {
        "source": "automatic, stratified",
        "ratios": [0.7, 0.15, 0.15],
        "seed": 3,
        "counts": {"train": 28, "val": 6, "test": 6},
    }
    assert set(GeoTiffFolder(root, split="val", split_seed=3).ids) == ids["val"]  # same on every open
    assert set(GeoTiffFolder(root, split="val", split_seed=4).ids) != ids["val"]
    assert len(GeoTiffFolder(root, split="train", split_ratios="0.5,0.25,0.25")) == 20
    with pytest.raises(ConfigError, match="split ratios '0.5,0.5,0.5' must be three"):
        GeoTiffFolder(root, split="train", split_ratios="0.5,0.5,0.5")
    csv = root / "labels.csv"
    csv.write_text(csv.read_text().replace("sample_id,", "key,", 1).replace("label\n", "label,fold\n", 1))
    with pytest.raises(DataError, match="no id column"):
        GeoTiffFolder(root)
    lines = csv.read_text().splitlines()
    csv.write_text(
        "\n".join([lines[0]] + [ln + (",a" if i % 2 else ",b") for i, ln in enumerate(lines[1:])]) + "\n"
    )
    assert len(GeoTiffFolder(root, id_column="key", split_column="fold", split="a")) == 20
    with pytest.raises(ConfigError, match="split_column='part' is not a column"):
        GeoTiffFolder(root, id_column="key", split_column="part")


def test_run_seed_is_the_default_split_seed(tmp_path):
    from eoreps.data.formats import open_dataset

    root = make(tmp_path, n=20, side=4, split=False)
    run5 = open_dataset(root, split="test", run_seed=5)
    assert run5.split_info["seed"] == 5 and set(run5.ids) == set(
        GeoTiffFolder(root, split="test", split_seed=5).ids
    )
    assert open_dataset(root, split="test", run_seed=5, split_seed=2).split_info["seed"] == 2  # explicit wins
    with pytest.raises(ConfigError, match="SimEODataset has no option 'skip_nodata'"):
        open_dataset("simeo", split="train", run_seed=1, skip_nodata=True)
