"""BigEarthNet v2 (reBEN): the real LMDB + parquet in ../shared/data and a seeded fake for bad input."""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from eoreps.data.bigearthnet_classes import BEN19_CLASSES
from eoreps.data.datasets.bigearthnet_npz import BigEarthNetNpz
from eoreps.data.datasets.reben import ReBEN
from eoreps.data.modalities import S2_L2A_BANDS
from eoreps.errors import ConfigError, DataError


def _generator():
    spec = importlib.util.spec_from_file_location("make_ben_v2", Path(__file__).with_name("make_ben_v2.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def fake(tmp_path) -> Path:
    return _generator().write_ben_v2(tmp_path / "reben", n=6, n_flagged=2, side=12, seed=3)


# ------------------------------------------------------------------ real data
@pytest.mark.realdata
def test_real_counts_and_splits(shared_data):
    root = shared_data / "bigearthnet" / "reben_v2_lmdb"
    ds = ReBEN(root)
    assert len(ds) == 18 and ds.num_excluded == 6
    full = ReBEN(root, include_snow_cloud=True)
    assert len(full) == 24 and full.num_excluded == 0
    assert set(ds.ids) < set(full.ids)
    assert [len(ReBEN(root, split=s)) for s in ("train", "val", "test")] == [6, 6, 6]
    assert len(ReBEN(root, split="validation")) == 6
    with pytest.raises(ConfigError, match="split"):
        ReBEN(root, split="holdout")


@pytest.mark.realdata
def test_real_samples_match_npz(shared_data):
    ben = shared_data / "bigearthnet"
    ds = ReBEN(ben / "reben_v2_lmdb", include_snow_cloud=True)
    s = ds[0]
    assert s["s2"].shape == (12, 120, 120) and s["s2"].dtype == torch.float32
    assert s["s1"].shape == (2, 120, 120) and s["multilabel"].shape == (19,)
    assert ds.band_names == {"s2": S2_L2A_BANDS, "s1": ("VV", "VH")}
    # the npz was exported from this LMDB: the loaders must agree exactly on all 24 pairs
    npz = BigEarthNetNpz(ben / "ben_s1s2_real.npz")
    pos = {n: i for i, n in enumerate(npz.ids)}
    for i in range(len(ds)):
        a, b = ds[i], npz[pos[ds.ids[i]]]
        assert a["s1_id"] == b["s1_id"]
        for k in ("s2", "s1", "multilabel"):
            assert torch.equal(a[k], b[k]), (ds.ids[i], k)


@pytest.mark.realdata
def test_real_label_matrix_from_metadata(shared_data):
    root = shared_data / "bigearthnet" / "reben_v2_lmdb"
    ds = ReBEN(root, modalities=["s1"])
    meta = pd.read_parquet(root / "metadata.parquet").set_index("patch_id")
    lm = ds.label_matrix()
    for i, pid in enumerate(ds.ids):
        assert {BEN19_CLASSES[j] for j in np.flatnonzero(lm[i])} == set(meta.loc[pid, "labels"])
    assert "s2" not in ds[0]


# ------------------------------------------------------------------ fake + bad input
def test_fake_layout_loads(fake):
    ds = ReBEN(fake, size=12)
    assert len(ds) == 6 and ds.num_excluded == 2
    s = ds[1]
    assert s["s2"].shape == (12, 12, 12) and s["s1"].shape == (2, 12, 12)
    assert len(ReBEN(fake, include_snow_cloud=True)) == 8
    ds2 = pickle.loads(pickle.dumps(ds))  # DataLoader workers receive a pickled copy
    assert torch.equal(ds2[1]["s2"], s["s2"])
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=0)
    assert next(iter(loader))["s2"].shape == (3, 12, 12, 12)


def test_forked_workers_after_parent_read(fake):
    """The parent already holds the LMDB open; forked DataLoader workers must open their own."""
    ds = ReBEN(fake, size=12)
    first = ds[0]["s2"]
    ctx = "fork" if "fork" in torch.multiprocessing.get_all_start_methods() else None
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, multiprocessing_context=ctx)
    batches = list(loader)
    assert sum(len(b["id"]) for b in batches) == 6 and torch.equal(batches[0]["s2"][0], first)
    assert torch.equal(ds[0]["s2"], first)  # the parent's handle still works



def _lmdb_mapped(root: Path) -> bool:
    """Whether this process maps the LMDB file under ``root`` (its pages count in the resident set)."""
    return str((root / "BigEarthNet-V2-LMDB" / "data.mdb").resolve()) in Path("/proc/self/maps").read_text()


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="reads /proc/self/maps (Linux)")
def test_reader_unmaps_the_lmdb_every_release_every_reads(fake, monkeypatch):
    """Packing an archive must not keep every page it read mapped: the environment is closed (the file
    unmapped) after RELEASE_EVERY entries and reopened by the next read."""
    from eoreps.data.datasets import reben

    ds = ReBEN(fake, size=12)
    expected = [ds[i]["s2"] for i in range(3)]
    monkeypatch.setattr(reben, "RELEASE_EVERY", 4)  # 2 entries (S2, S1) per sample
    reben._READS.clear()
    ds[0]
    assert _lmdb_mapped(fake)
    ds[1]  # the 4th entry: released
    assert not _lmdb_mapped(fake)
    assert torch.equal(ds[2]["s2"], expected[2]) and _lmdb_mapped(fake)  # reopened, same values
    assert all(torch.equal(ds[i]["s2"], expected[i]) for i in range(3))
    monkeypatch.setattr(reben, "RELEASE_EVERY", 10**9)  # without the release the map stays
    for i in range(6):
        ds[i]
    assert _lmdb_mapped(fake)


def test_key_check_reopens_the_lmdb_every_release_every_keys(fake, monkeypatch):
    """The check that every listed patch is in the LMDB (12 keys here) maps the file anew every RELEASE_EVERY
    keys, so its walk never holds the whole file resident, and leaves it unmapped."""
    import lmdb

    from eoreps.data.datasets import reben

    opened = []
    real_open = lmdb.open
    monkeypatch.setattr(lmdb, "open", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    monkeypatch.setattr(reben, "RELEASE_EVERY", 4)
    ds = ReBEN(fake, size=12)

    def held() -> bool:
        return any(path == str(ds.lmdb_path.resolve()) for path, _ in reben._ENVS)

    assert len(opened) == 3 and not held()
    if Path("/proc/self/maps").is_file():
        assert not _lmdb_mapped(fake)
    meta = pd.read_parquet(fake / "metadata.parquet")
    meta.assign(s1_name=[*meta["s1_name"][:-1], "S1_missing"]).to_parquet(fake / "metadata.parquet")
    with pytest.raises(DataError, match="no entry for S1_missing"):
        ReBEN(fake, size=12)
    assert not held()  # released on the error too
    assert ds[0]["s2"].shape == (12, 12, 12)

def test_missing_parquet_column(fake):
    df = pd.read_parquet(fake / "metadata.parquet").drop(columns=["labels"])
    df.to_parquet(fake / "metadata.parquet")
    with pytest.raises(DataError, match=r"metadata.parquet: missing columns labels"):
        ReBEN(fake)


def test_corrupt_parquet(fake):
    (fake / "metadata.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match=r"metadata.parquet: unreadable parquet"):
        ReBEN(fake)


def test_unreadable_lmdb(fake):
    (fake / "BigEarthNet-V2-LMDB" / "data.mdb").write_bytes(b"\x00" * 8192)
    with pytest.raises(DataError, match=r"data.mdb: unreadable LMDB"):
        ReBEN(fake)


def test_lmdb_missing_entry_and_bad_blob(fake):
    import lmdb

    meta = pd.read_parquet(fake / "metadata.parquet")
    env = lmdb.open(str(fake / "BigEarthNet-V2-LMDB"), subdir=True)
    with env.begin(write=True) as txn:
        txn.delete(meta["s1_name"][0].encode())
        txn.put(meta["patch_id"][1].encode(), b"garbage, not safetensors")
    env.close()
    with pytest.raises(DataError, match=rf"no entry for {meta['s1_name'][0]}"):
        ReBEN(fake)
    ds = ReBEN(fake, modalities=["s2"])  # S2-only does not need the deleted S1 entry
    with pytest.raises(DataError, match=rf"\[{meta['patch_id'][1]}\]: corrupt safetensors blob"):
        ds[1]


def test_band_missing_or_misshaped(fake):
    import lmdb
    from safetensors.numpy import load, save

    meta = pd.read_parquet(fake / "metadata.parquet")
    env = lmdb.open(str(fake / "BigEarthNet-V2-LMDB"), subdir=True)
    with env.begin(write=True) as txn:
        a = load(txn.get(meta["patch_id"][0].encode()))
        a.pop("B09")
        txn.put(meta["patch_id"][0].encode(), save(a))
        b = load(txn.get(meta["patch_id"][2].encode()))
        b["B05"] = b["B02"]  # a 10 m-sized array where a 20 m band belongs
        txn.put(meta["patch_id"][2].encode(), save(b))
    env.close()
    ds = ReBEN(fake)
    with pytest.raises(DataError, match="bands B09 are missing"):
        ds[0]
    with pytest.raises(DataError, match=r"band B05 has shape \(12, 12\); expected \(6, 6\)"):
        ds[2]


def test_no_lmdb(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    (root / "metadata.parquet").write_bytes(b"")
    with pytest.raises(DataError, match="no LMDB"):
        ReBEN(root)
