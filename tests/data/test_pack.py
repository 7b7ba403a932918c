"""``eoreps data pack``: streaming statistics, round trip, resume after SIGKILL, the real BigEarthNet
pairs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from litdata import StreamingDataset

from eoreps.data.datasets.packed import to_sample
from eoreps.data.formats import open_dataset
from eoreps.data.pack import MANIFEST, STATE_DIR, PackOptions, check_manifest, pack, verify_pack
from eoreps.data.pack_stats import BandStats, merge_all
from eoreps.errors import DataError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_geotiff_folder import write_geotiff_folder  # noqa: E402


@pytest.fixture(scope="module")
def simeo(tmp_path_factory) -> Path:
    from eoreps.data.simeo import SimEOParams, write_simeo

    return write_simeo(
        tmp_path_factory.mktemp("sim") / "sim", n=40, seed=0, params=SimEOParams(patch_size=16)
    )


def _packed(root: Path, split: str) -> list[dict]:
    ds = StreamingDataset(str(root / split))
    return [ds[i] for i in range(len(ds))]


def test_band_stats_equal_numpy_nan_aware():
    rng = np.random.default_rng(0)
    x = rng.normal(5, 3, (9, 3, 4, 5))
    x[rng.random(x.shape) < 0.2] = np.nan
    x[2, 1] = np.nan  # a sample whose band 1 is all no-data
    parts = [BandStats.of(s) for s in x]
    acc = parts[0]
    for s in parts[1:]:
        acc = acc.merge(s)
    half = merge_all([{"s2": BandStats.of(x[0]).merge(BandStats.of(x[1])).to_dict()},
                      {"s2": acc.to_dict()}])["s2"]  # merging serialized partials works the same way
    flat = x.transpose(1, 0, 2, 3).reshape(3, -1)
    got = acc.summary()
    np.testing.assert_allclose(got["mean"], np.nanmean(flat, axis=1), rtol=1e-12)
    np.testing.assert_allclose(got["std"], np.nanstd(flat, axis=1), rtol=1e-12)
    np.testing.assert_array_equal(got["min"], np.nanmin(flat, axis=1))
    np.testing.assert_array_equal(got["max"], np.nanmax(flat, axis=1))
    assert got["count"] == np.sum(~np.isnan(flat), axis=1).tolist()
    np.testing.assert_allclose(got["nan_fraction"], np.isnan(flat).mean(axis=1))
    both = np.concatenate([x[:2], x], axis=0).transpose(1, 0, 2, 3).reshape(3, -1)
    np.testing.assert_allclose(half.summary()["std"], np.nanstd(both, axis=1), rtol=1e-12)


def test_pack_simeo_round_trip_labels_and_stats(simeo, tmp_path):
    out = tmp_path / "p"
    res = pack(PackOptions(str(simeo), out, part_size=7, chunk_bytes="40KB"))
    man = check_manifest(out, checksums=True)
    assert res.manifest == man
    assert set(man["splits"]) == {"train", "val", "test", "shifted"}
    labels = pd.read_parquet(out / "labels.parquet")
    all_s2 = []
    for split, n in man["splits"].items():
        src = open_dataset(simeo, split=split)
        got = _packed(out, split)
        assert n == len(src) == len(got) > 0
        assert len(json.loads((out / split / "index.json").read_text())["chunks"]) > 1
        rows = labels[labels.split == split].sort_values("index")
        assert rows["index"].tolist() == list(range(n))
        for i, item in enumerate(got):
            want = src[i]
            assert item["id"] == want["id"] == rows["id"].iloc[i]
            for key in ("s2", "s1", "mask", "label", "multilabel", "season", "doy"):
                np.testing.assert_array_equal(item[key], want[key].numpy())
            # S2 DN are stored as uint16 where lossless (no NaN), read back as float32 (pack_dtypes)
            assert item["s2"].dtype == (np.float32 if np.isnan(want["s2"].numpy()).any() else np.uint16)
            assert to_sample(item)["s2"].dtype == torch.float32 and item["mask"].dtype == np.int64
            assert rows["label"].iloc[i] == int(want["label"])
            all_s2.append(item["s2"])
    s2 = np.stack(all_s2).transpose(1, 0, 2, 3).reshape(12, -1).astype(np.float64)
    np.testing.assert_allclose(man["stats"]["s2"]["mean"], np.nanmean(s2, axis=1), rtol=1e-9)
    np.testing.assert_allclose(man["stats"]["s2"]["std"], np.nanstd(s2, axis=1), rtol=1e-9)
    assert (
        man["modalities"]["s2"]["shape"] == [12, 16, 16] and man["modalities"]["s2"]["resampling"] == "none"
    )
    assert man["skipped"] == 0
    assert not (out / STATE_DIR).exists()
    assert verify_pack(out, samples=5).compared == 5


_KILLER = """
import os, signal, sys
from litdata.streaming.writer import BinaryWriter
from eoreps.data import pack as P
committed, commit, write = [], P._State.commit, BinaryWriter.write_chunk
def commit_and_note(self, split, part):
    commit(self, split, part)
    committed.append(split)
def write_chunk(self, *a, **k):
    path = write(self, *a, **k)
    if committed:  # the first part is committed and one chunk of the second is on disk: die now
        os.kill(os.getpid(), signal.SIGKILL)
    return path
P._State.commit, BinaryWriter.write_chunk = commit_and_note, write_chunk
P.pack(P.PackOptions(sys.argv[1], P.Path(sys.argv[2]), splits=("train",), part_size=6, chunk_bytes="30KB"))
"""


def test_pack_resumes_after_sigkill_with_every_id_once(simeo, tmp_path):
    out = tmp_path / "p"
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_KILLER), str(simeo), str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    state = json.loads((out / STATE_DIR / "state.json").read_text())
    assert len(state["parts"]["train"]) == 1 and not (out / MANIFEST).exists()
    committed = {c["filename"] for c in state["parts"]["train"][0]["chunks"]}
    assert {p.name for p in (out / "train").glob("chunk-*")} - committed  # a stray chunk of the killed part
    with pytest.raises(DataError, match="--resume"):
        check_manifest(out)
    res = pack(PackOptions(str(simeo), out, splits=("train",), part_size=6, chunk_bytes="30KB", resume=True))
    ids = [s["id"] for s in _packed(out, "train")]
    want = [s["id"] for s in open_dataset(simeo, split="train")]
    assert ids == want and len(set(ids)) == len(ids)
    assert res.written == len(want) - 6
    assert pd.read_parquet(out / "labels.parquet")["id"].tolist() == want
    check_manifest(out, checksums=True)


def test_corrupt_item_is_skipped_and_listed(tmp_path):
    src = write_geotiff_folder(tmp_path / "gt", n=8, side=8)
    bad = src / "s2" / "patch_006.tif"  # the second val sample (the first names the bands)
    bad.write_bytes(bad.read_bytes()[:200])
    out = tmp_path / "p"
    man = pack(PackOptions(str(src), out, part_size=3)).manifest
    assert man["skipped"] == 1 and man["splits"]["val"] == 1
    skipped = pd.read_csv(out / "skipped.csv")
    assert skipped["source_item"].tolist() == ["val[1]"] and "patch_006" in skipped["reason"][0]
    assert "patch_006" not in pd.read_parquet(out / "labels.parquet")["id"].tolist()
    with pytest.raises(DataError, match="patch_006.*--strict"):
        pack(PackOptions(str(src), tmp_path / "strict", strict=True))


def test_check_manifest_refuses_damage_and_other_versions(simeo, tmp_path):
    out = tmp_path / "p"
    man = pack(PackOptions(str(simeo), out, splits=("val",))).manifest
    chunk = out / next(iter(man["checksums"]))
    data = chunk.read_bytes()
    chunk.write_bytes(data[:-10])
    with pytest.raises(DataError, match=f"{chunk}: truncated"):
        check_manifest(out)
    chunk.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    check_manifest(out)  # same size: only the checksum sees it
    with pytest.raises(DataError, match=f"{chunk}: checksum"):
        check_manifest(out, checksums=True)
    chunk.unlink()
    with pytest.raises(DataError, match=f"{chunk}: chunk missing"):
        check_manifest(out)
    chunk.write_bytes(data)
    for key, value, what in (
        ("version", 2, "format version 2"),
        ("eoreps_version", "9.3.0", "eoreps '9.3.0'"),
    ):
        bad = {**man, key: value}
        (out / MANIFEST).write_text(json.dumps(bad))
        with pytest.raises(DataError, match=what):
            check_manifest(out)
    (out / MANIFEST).unlink()
    with pytest.raises(DataError, match="not an eoreps pack"):
        check_manifest(out)


# ---------------------------------------------------------------------------------- real BigEarthNet pairs
def _by_id(out: Path, man: dict) -> dict[str, dict]:
    return {s["id"]: s for split in man["splits"] for s in _packed(out, split)}


def test_three_bigearthnet_formats_pack_to_identical_tensors(shared_data, tmp_path):
    import torch

    ben = shared_data / "bigearthnet"
    packs = {}
    for name, src in (("v1", ben), ("reben", ben / "reben_v2_lmdb"), ("npz", ben / "ben_s1s2_real.npz")):
        out = tmp_path / name
        man = pack(PackOptions(str(src), out, workers=1 if name == "npz" else 0)).manifest
        if (
            name == "npz"
        ):  # its 6 rows with an empty split are in no split: reported, packed with --splits all
            assert man["unsplit"] == 6 and sum(man["splits"].values()) == 54
            man = pack(PackOptions(str(src), tmp_path / "npz-all", splits=("all",))).manifest
            out = tmp_path / "npz-all"
        assert man["modalities"]["s2"]["shape"] == [12, 120, 120]
        assert man["modalities"]["s2"]["resampling"] == "bilinear"
        assert (
            man["modalities"]["s1"]["shape"] == [2, 120, 120]
            and man["modalities"]["s1"]["resampling"] == "none"
        )
        packs[name] = _by_id(out, man)
    assert len(packs["npz"]) == 60
    labels = pd.read_parquet(tmp_path / "npz-all" / "labels.parquet").set_index("id")
    y = labels[[f"y_{k}" for k in range(19)]]
    for pid, sample in packs["npz"].items():  # the label table is the packed multi-hot labels, no image read
        np.testing.assert_array_equal(y.loc[pid].to_numpy(), sample["multilabel"].astype(int))
    for other in ("v1", "reben"):
        common = set(packs[other]) & set(packs["npz"])
        assert len(common) == len(packs[other]) >= 6
        for pid in common:
            for key in ("s2", "s1", "multilabel"):
                np.testing.assert_array_equal(packs[other][pid][key], packs["npz"][pid][key])
    # the resampling: a 20 m band (B05) on the 10 m grid is the bilinear, area-aligned upsampling of the raw
    # band
    raw = np.load(ben / "ben_s1s2_real.npz")
    name = str(raw["s2_name"][0])
    b05 = torch.from_numpy(raw["s2_20m"][0, :1].astype(np.float32))[None]
    up = torch.nn.functional.interpolate(b05, size=(120, 120), mode="bilinear", align_corners=False)[0, 0]
    np.testing.assert_array_equal(packs["npz"][name]["s2"][4], up.numpy())
