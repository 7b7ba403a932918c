"""The torchgeo wrapper on torchgeo's own EuroSAT / SEN12MS classes reading seeded on-disk fakes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from eoreps.data.datasets.torchgeo import TorchGeoWrapper, normalise_band_name, open_torchgeo, split_bands
from eoreps.data.modalities import S2_L1C_BANDS, S2_L2A_BANDS
from eoreps.errors import ConfigError, DataError

tgd = pytest.importorskip("torchgeo.datasets")


def _gen(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def eurosat_root(tmp_path_factory) -> Path:
    return _gen("make_eurosat").write_eurosat(tmp_path_factory.mktemp("eurosat"), per_class=4, side=8, seed=1)


@pytest.fixture(scope="module")
def sen12ms_root(tmp_path_factory) -> Path:
    return _gen("make_sen12ms").write_sen12ms(tmp_path_factory.mktemp("sen12ms"), n_train=4, n_test=2, side=8)


def test_band_names_and_grouping():
    assert [normalise_band_name(b) for b in ("B1", "b8a", "B10", "B08", "VV")] == [
        "B01",
        "B8A",
        "B10",
        "B08",
        "VV",
    ]
    ssl4eo_l2a = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12"]
    g = split_bands(ssl4eo_l2a)
    assert list(g) == ["s2"] and [n for _, n in g["s2"]] == list(S2_L2A_BANDS)
    g = split_bands(["VH", "B04", "elevation", "B03", "VV", "B10"])
    assert [n for _, n in g["s2_l1c"]] == ["B03", "B04", "B10"] and g["s1"] == [(4, "VV"), (0, "VH")]
    assert g["image"] == [(2, "elevation")]
    assert "s2_l1c" not in split_bands(["B03", "B10"], drop_b10=True)


def test_eurosat_fake_through_torchgeo(eurosat_root):
    raw = tgd.EuroSAT(eurosat_root, split="train")  # torchgeo's own integrity checks, no download
    ds = TorchGeoWrapper(raw)
    assert len(ds) == 20 and ds.task == "single" and len(ds.classes) == 10
    assert ds.modalities == ("s2_l1c",) and ds.band_names["s2_l1c"] == S2_L1C_BANDS
    s = ds[5]
    assert s["s2_l1c"].shape == (13, 8, 8) and s["s2_l1c"].dtype == torch.float32
    assert s["label"].dtype == torch.int64 and ds.classes[int(s["label"])] == s["id"].rsplit("_", 1)[0]
    # reordering by name: torchgeo's file order puts B8A last (value ~13000); eoreps puts it after B08
    cls = s["id"].rsplit("_", 1)[0]
    with rasterio.open(eurosat_root / _gen("make_eurosat").BASE / cls / f"{s['id']}.tif") as f:
        file_bands = torch.from_numpy(f.read().astype(np.float32))
    assert torch.equal(s["s2_l1c"][S2_L1C_BANDS.index("B8A")], file_bands[12])
    assert torch.equal(s["s2_l1c"][S2_L1C_BANDS.index("B09")], file_bands[8])
    assert torch.equal(ds.label_matrix(), torch.stack([ds[i]["label"] for i in range(len(ds))]))
    l2a = TorchGeoWrapper(raw, drop_b10=True)
    assert l2a.modalities == ("s2",) and l2a.band_names["s2"] == S2_L2A_BANDS and l2a[0]["s2"].shape[0] == 12
    rgb = TorchGeoWrapper(tgd.EuroSAT(eurosat_root, split="val", bands=("B04", "B03", "B02")))
    assert rgb.band_names == {"s2": ("B02", "B03", "B04")} and len(rgb) == 10
    assert float(rgb[0]["s2"][0].mean()) < float(rgb[0]["s2"][2].mean())  # B02 (~2000) before B04 (~4000)


def test_sen12ms_fake_through_torchgeo(sen12ms_root):
    ds = TorchGeoWrapper(tgd.SEN12MS(sen12ms_root, split="train"))
    assert len(ds) == 4 and ds.task == "segmentation"
    assert ds.modalities == ("s2_l1c", "s1") and ds.band_names["s1"] == ("VV", "VH")
    s = ds[1]
    assert s["s1"].shape == (2, 8, 8) and s["mask"].shape == (8, 8) and s["mask"].dtype == torch.int64
    assert 1 <= int(s["mask"].min()) and int(s["mask"].max()) <= 17  # IGBP classes as SEN12MS stores them
    assert -40 < float(s["s1"].mean()) < 0  # dB
    assert len(TorchGeoWrapper(tgd.SEN12MS(sen12ms_root, split="test"))) == 2
    s1_only = TorchGeoWrapper(tgd.SEN12MS(sen12ms_root, split="train", bands=("VV", "VH")))
    assert s1_only.modalities == ("s1",)


def test_multilabel_and_band_count_mismatch():
    class Fake(torch.utils.data.Dataset):
        bands = ("B02", "B03", "B04", "B08")
        classes = ("a", "b", "c")

        def __len__(self):
            return 3

        def __getitem__(self, i):
            return {"image": torch.full((4, 5, 5), float(i)), "label": torch.tensor([1, 0, i % 2])}

    ds = TorchGeoWrapper(Fake())
    assert ds.task == "multi" and ds.classes == ("a", "b", "c")
    s = ds[1]
    assert s["multilabel"].dtype == torch.float32 and s["multilabel"].tolist() == [1.0, 0.0, 1.0]
    assert s["s2"].shape == (4, 5, 5) and s["id"] == "Fake_1"
    with pytest.raises(ConfigError, match="3 band names for 4 image channels"):
        TorchGeoWrapper(Fake(), band_names=["B02", "B03", "B04"])


def test_errors(eurosat_root, tmp_path):
    with pytest.raises(DataError, match="torchgeo EuroSAT: Dataset not found"):
        open_torchgeo("EuroSAT", root=str(tmp_path / "nothing"))
    with pytest.raises(ConfigError, match="unknown torchgeo dataset 'EuroSet'"):
        open_torchgeo("EuroSet", root=str(eurosat_root))
    with pytest.raises(ConfigError, match="invalid options"):
        open_torchgeo("EuroSAT", root=str(eurosat_root), split="holdout")
    ds = open_torchgeo("EuroSAT", root=str(eurosat_root), split="test")
    assert len(ds) == 10
    victim = Path(ds.dataset.samples[3][0])
    data = victim.read_bytes()
    try:
        victim.write_bytes(data[:300])
        with pytest.raises(DataError, match=rf"EuroSAT\[3\] \({victim.stem}\): cannot read the sample"):
            ds[3]
    finally:
        victim.write_bytes(data)
