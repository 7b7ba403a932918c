"""BigEarthNet v1 folders and the npz, on the real patches in ../shared/data/bigearthnet."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from eoreps.data.bigearthnet_classes import (
    BEN19_CLASSES,
    BEN43_CLASSES,
    BEN43_TO_19,
    DROPPED_43,
    multihot19_from_19,
    multihot19_from_43,
)
from eoreps.data.datasets.bigearthnet import BigEarthNetV1
from eoreps.data.datasets.bigearthnet_npz import BigEarthNetNpz
from eoreps.data.modalities import S2_L2A_BANDS
from eoreps.errors import ConfigError, DataError

pytestmark = pytest.mark.realdata


def writable_copy(src: Path, dst: Path) -> Path:
    """Copy a read-only tree and make it writable (the shared data is read-only)."""
    shutil.copytree(src, dst)
    for d, _dirs, files in os.walk(dst):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(Path(d) / f, 0o644)
    return dst


@pytest.fixture(scope="module")
def ben(shared_data) -> Path:
    return shared_data / "bigearthnet"


@pytest.fixture(scope="module")
def paired(ben) -> BigEarthNetV1:
    return BigEarthNetV1(ben / "BigEarthNet-S2-Example", ben / "BigEarthNet-S1-Example")


# ------------------------------------------------------------------ classes
def test_43_to_19_mapping_is_complete():
    assert len(BEN43_CLASSES) == 43 and len(BEN19_CLASSES) == 19
    assert set(BEN43_TO_19) == set(BEN43_CLASSES)
    assert len(DROPPED_43) == 11
    assert set(m for m in BEN43_TO_19.values() if m) == set(BEN19_CLASSES)  # every 19-class has a source
    assert (
        BEN43_TO_19["Continuous urban fabric"] == BEN43_TO_19["Discontinuous urban fabric"] == "Urban fabric"
    )
    assert BEN43_TO_19["Sea and ocean"] == "Marine waters" and BEN43_TO_19["Airports"] is None


def test_multihot_conversions():
    v = multihot19_from_43(["Rice fields", "Vineyards", "Olive groves", "Airports"])
    assert v.dtype == np.float32 and v.shape == (19,)
    assert np.flatnonzero(v).tolist() == [
        BEN19_CLASSES.index("Arable land"),
        BEN19_CLASSES.index("Permanent crops"),
    ]
    assert (
        multihot19_from_19(["Transitional woodland/shrub"])[
            BEN19_CLASSES.index("Transitional woodland, shrub")
        ]
        == 1
    )
    with pytest.raises(DataError, match="x.json.*'Moon'"):
        multihot19_from_43(["Moon"], source="x.json")
    with pytest.raises(DataError, match="unknown BigEarthNet-19 label"):
        multihot19_from_19(["Pasture"])


# ------------------------------------------------------------------ loading
def test_s2_folder(ben):
    ds = BigEarthNetV1(s2_root=ben / "BigEarthNet-S2-Example")
    assert len(ds) == 6 and ds.modalities == ("s2",) and ds.band_names["s2"] == S2_L2A_BANDS
    s = ds[0]
    assert set(s) == {"id", "s2", "multilabel"}
    assert s["s2"].shape == (12, 120, 120) and s["s2"].dtype == torch.float32
    assert s["multilabel"].shape == (19,) and s["multilabel"].dtype == torch.float32
    folder = ben / "BigEarthNet-S2-Example" / s["id"]
    with rasterio.open(folder / f"{s['id']}_B02.tif") as f:
        b02 = f.read(1).astype(np.float32)
    assert torch.equal(s["s2"][S2_L2A_BANDS.index("B02")], torch.from_numpy(b02))  # 10 m bands untouched
    # 43 -> 19 labels of this patch: arable land + agriculture with natural vegetation
    assert s["id"] == "S2A_MSIL2A_20170613T101031_87_48"
    assert np.flatnonzero(s["multilabel"]).tolist() == [2, 6]


def test_resampling_is_area_aligned(ben):
    root = ben / "BigEarthNet-S2-Example"
    near = BigEarthNetV1(s2_root=root, resampling="nearest")[0]
    bil = BigEarthNetV1(s2_root=root)[0]
    folder = root / near["id"]
    for band, factor in (("B05", 2), ("B01", 6)):
        with rasterio.open(folder / f"{near['id']}_{band}.tif") as f:
            raw = torch.from_numpy(f.read(1).astype(np.float32))
        j = S2_L2A_BANDS.index(band)
        # nearest: every coarse pixel becomes an exact factor x factor block (no half-pixel shift)
        assert torch.equal(near["s2"][j], raw.repeat_interleave(factor, 0).repeat_interleave(factor, 1))
        # bilinear interpolates inside the coarse range and keeps the band mean to within 1%
        assert bil["s2"][j].min() >= raw.min() - 1e-3 and bil["s2"][j].max() <= raw.max() + 1e-3
        assert abs(bil["s2"][j].mean() - raw.mean()) / raw.mean() < 0.01
    assert BigEarthNetV1(s2_root=root, size=60)[0]["s2"].shape == (12, 60, 60)
    with pytest.raises(ConfigError, match="resampling"):
        BigEarthNetV1(s2_root=root, resampling="lanczos")


def test_s1_folder(ben):
    ds = BigEarthNetV1(s1_root=ben / "BigEarthNet-S1-Example")
    assert len(ds) == 6 and ds.band_names == {"s1": ("VV", "VH")}
    s1 = torch.stack([ds[i]["s1"] for i in range(len(ds))])
    assert s1.shape == (6, 2, 120, 120)
    assert -60 < float(s1.min()) and float(s1.max()) < 40  # dB, not linear power
    assert float(s1[:, 0].mean()) > float(s1[:, 1].mean())  # VV backscatter exceeds VH


def test_pairs_follow_s1_metadata(paired, ben):
    assert len(paired) == 6 and paired.modalities == ("s2", "s1")
    for i in range(len(paired)):
        s = paired[i]
        assert s["s1"].shape == (2, 120, 120) and s["s2"].shape == (12, 120, 120)
        # the twin is the one the S1 JSON names, not a name guess
        import json

        meta = json.loads(
            (ben / "BigEarthNet-S1-Example" / s["s1_id"] / f"{s['s1_id']}_labels_metadata.json").read_text()
        )
        assert meta["corresponding_s2_patch"] == s["id"]
    assert torch.equal(paired.label_matrix(), torch.stack([paired[i]["multilabel"] for i in range(6)]))


def test_v1_matches_npz(paired, ben):
    npz = BigEarthNetNpz(ben / "ben_s1s2_real.npz")
    pos = {n: i for i, n in enumerate(npz.ids)}
    for i in range(len(paired)):
        a = paired[i]
        b = npz[pos[a["id"]]]
        assert b["s1_id"] == a["s1_id"]
        for k in ("s2", "s1", "multilabel"):
            assert torch.equal(a[k], b[k]), k


def test_npz_splits_and_modalities(ben):
    path = ben / "ben_s1s2_real.npz"
    assert len(BigEarthNetNpz(path)) == 60
    assert [len(BigEarthNetNpz(path, split=s)) for s in ("train", "val", "test")] == [18, 18, 18]
    ds = BigEarthNetNpz(path, modalities=["s1"])
    assert set(ds[0]) == {"id", "s1", "multilabel", "s1_id"}
    lm = ds.label_matrix()
    # four classes never occur in these 60 pairs (Permanent crops, Natural grassland, Beaches, Coastal
    # wetlands; the data README says three)
    assert lm.shape == (60, 19) and int(lm.sum(0).eq(0).sum()) == 4
    with pytest.raises(ConfigError, match="split"):
        BigEarthNetNpz(path, split="holdout")


def test_npz_errors(tmp_path, ben):
    with np.load(ben / "ben_s1s2_real.npz") as z:
        arrays = {k: z[k] for k in z.files}
    bad = tmp_path / "bad.npz"
    np.savez(bad, **{k: v for k, v in arrays.items() if k != "s1_vv_vh_db"})
    with pytest.raises(DataError, match="bad.npz.*s1_vv_vh_db"):
        BigEarthNetNpz(bad)
    arrays["s2_20m"] = arrays["s2_20m"][:10]
    np.savez(bad, **arrays)
    with pytest.raises(DataError, match="s2_20m has 10 rows"):
        BigEarthNetNpz(bad)
    trunc = tmp_path / "trunc.npz"
    trunc.write_bytes((ben / "ben_s1s2_real.npz").read_bytes()[:5000])
    with pytest.raises(DataError, match="trunc.npz"):
        BigEarthNetNpz(trunc)


# ------------------------------------------------------------------ bad input
def test_missing_band_file(tmp_path, ben):
    root = writable_copy(ben / "BigEarthNet-S2-Example", tmp_path / "S2")
    victim = sorted(root.glob("*/*_B8A.tif"))[2]
    victim.unlink()
    with pytest.raises(DataError, match=f"{victim.name}: band file is missing"):
        BigEarthNetV1(s2_root=root)


def test_truncated_and_corrupt_band(tmp_path, ben):
    root = writable_copy(ben / "BigEarthNet-S2-Example", tmp_path / "S2")
    ds = BigEarthNetV1(s2_root=root)
    victim = root / ds.ids[1] / f"{ds.ids[1]}_B03.tif"
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    ds[0]  # other patches still load
    with pytest.raises(DataError, match=f"{victim.name}: corrupt or truncated GeoTIFF"):
        ds[1]
    victim.write_bytes(b"II*\x00" + b"\x00" * 100)
    with pytest.raises(DataError, match=victim.name):
        ds[1]


def test_band_shape_mismatch(tmp_path, ben):
    root = writable_copy(ben / "BigEarthNet-S2-Example", tmp_path / "S2")
    ds = BigEarthNetV1(s2_root=root)
    pid = ds.ids[0]
    shutil.copyfile(root / pid / f"{pid}_B02.tif", root / pid / f"{pid}_B11.tif")  # 120 px where 60 px belong
    with pytest.raises(
        DataError, match=r"_B11.tif: band shape \(120, 120\) does not match the expected \(60, 60\)"
    ):
        ds[0]


def test_missing_twin_and_metadata(tmp_path, ben):
    s2 = writable_copy(ben / "BigEarthNet-S2-Example", tmp_path / "S2")
    s1 = writable_copy(ben / "BigEarthNet-S1-Example", tmp_path / "S1")
    gone = sorted(s1.iterdir())[0]
    shutil.rmtree(gone)
    with pytest.raises(DataError, match="no S1 patch"):
        BigEarthNetV1(s2, s1)
    meta = sorted(s2.glob("*/*_labels_metadata.json"))[0]
    meta.write_text("{not json")
    with pytest.raises(DataError, match=f"{meta.name}: unreadable labels metadata"):
        BigEarthNetV1(s2_root=s2)


def test_split_files(tmp_path, ben):
    root = ben / "BigEarthNet-S2-Example"
    with pytest.raises(ConfigError, match="train.csv"):
        BigEarthNetV1(s2_root=root, split="train")
    ids = BigEarthNetV1(s2_root=root).ids
    (tmp_path / "train.csv").write_text(f"{ids[0]}\n{ids[3]}\n")
    ds = BigEarthNetV1(s2_root=root, split="train", split_dir=tmp_path)
    assert ds.ids == [ids[0], ids[3]]
    # BigEarthNet-MM lists: "S2,S1" per row; an S1-only dataset selects by its own names
    pairs = BigEarthNetV1(root, ben / "BigEarthNet-S1-Example")
    s1_name = pairs[2]["s1_id"]
    (tmp_path / "val.csv").write_text(f"{pairs.ids[2]},{s1_name}\n")
    s1 = BigEarthNetV1(s1_root=ben / "BigEarthNet-S1-Example", split="val", split_dir=tmp_path)
    assert s1.ids == [s1_name]


def test_pairs_are_spatially_coregistered(ben):
    """S1 and S2 of one patch correlate (NIR vs VV backscatter, 4x4-pooled); shuffled pairs do not."""
    import torch.nn.functional as F

    ds = BigEarthNetNpz(ben / "ben_s1s2_real.npz")

    def z(x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(x[None, None], 4).flatten()
        return (x - x.mean()) / (x.std() + 1e-6)

    samples = [ds[i] for i in range(len(ds))]
    nir = torch.stack([z(s["s2"][S2_L2A_BANDS.index("B08")]) for s in samples])
    vv = torch.stack([z(s["s1"][0]) for s in samples])
    c = (nir @ vv.T / nir.shape[1]).abs()  # (60, 60) |Pearson r|, true pairs on the diagonal
    true, shuffled = c.diag(), c[~torch.eye(len(ds), dtype=torch.bool)]
    assert float(true.mean()) > 3 * float(shuffled.mean())  # measured: 0.30 vs 0.07
    top1 = float((c.argmax(1) == torch.arange(len(ds))).float().mean())
    assert top1 > 0.3  # measured 0.57; chance is 1/60
