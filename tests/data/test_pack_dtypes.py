"""Packs store each image modality in its native dtype where lossless (uint16 S2 DN), read back as float32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from eoreps.data import pack_dtypes
from eoreps.data.datasets.packed import PackedDataset
from eoreps.data.pack import PackOptions, pack
from eoreps.data.reben_writer import write_ben_v2


def test_narrow_keeps_float32_unless_exact():
    dn = np.array([[[0, 1, 65535]]], dtype=np.float32)
    out, stored = pack_dtypes.narrow({"s2": dn, "s1": dn.copy(), "id": "a"}, ["s2", "s1"])
    assert out["s2"].dtype == np.uint16 and np.array_equal(out["s2"], dn) and stored == {"s2": "uint16",
                                                                                      "s1": "float32"}
    assert out["s1"].dtype == np.float32 and out["id"] == "a"  # S1 dB is float32 at the source
    for bad in (0.5, -1.0, 65536.0, np.nan):  # fractions, out of range, no-data: not lossless in uint16
        x = dn.copy()
        x[0, 0, 1] = bad
        assert pack_dtypes.narrow({"s2": x}, ["s2"])[0]["s2"].dtype == np.float32
    vec = np.array([1.0, 2.0], dtype=np.float32)  # vectors keep one LitData format per split: never narrowed
    assert pack_dtypes.narrow({"s2": vec}, ["s2"])[0]["s2"].dtype == np.float32


def _pack(src: Path, out: Path) -> dict:
    # nearest on the native 12 px grid: S2 DN stay integers (bilinear would make the 20/60 m bands fractional)
    return pack(PackOptions(str(src), out, options={"size": 12, "resampling": "nearest"})).manifest


@pytest.fixture(scope="module")
def reben(tmp_path_factory) -> Path:
    return write_ben_v2(tmp_path_factory.mktemp("rb") / "rb", n=9, n_flagged=0, side=12, seed=1)


def test_uint16_pack_is_smaller_and_reads_the_same(reben, tmp_path, monkeypatch):
    native = _pack(reben, tmp_path / "native")
    assert native["modalities"]["s2"]["dtype"] == "uint16"
    assert native["modalities"]["s2"]["stored_dtypes"] == {"uint16": 9}
    assert native["modalities"]["s1"]["dtype"] == "float32"
    assert native["modalities"]["s2"]["sample_dtype"] == "float32"
    monkeypatch.setattr(pack_dtypes, "native_dtype", lambda modality: None)  # what packs were before
    old = _pack(reben, tmp_path / "float32")
    assert old["modalities"]["s2"]["dtype"] == "float32"
    assert sum(native["sizes"].values()) < 0.8 * sum(old["sizes"].values())
    for split in ("train", "val", "test"):
        a, b = PackedDataset(tmp_path / "native", split), PackedDataset(tmp_path / "float32", split)
        assert len(a) == len(b) == 3
        for i in range(3):
            sa, sb = a[i], b[i]
            assert sa["id"] == sb["id"]
            for key in ("s2", "s1"):
                assert sa[key].dtype == sb[key].dtype == torch.float32
                assert torch.equal(sa[key], sb[key])
    stream = next(iter(PackedDataset(tmp_path / "native", "train").stream(shuffle=False)))
    assert stream["s2"].dtype == torch.float32 and stream["s2"].shape == (12, 12, 12)


def test_a_sample_with_no_data_is_stored_float32(reben, tmp_path, monkeypatch):
    from eoreps.data.datasets.reben import ReBEN

    read = ReBEN.__getitem__

    def with_nan(self, index):
        s = read(self, index)
        if index == 0:
            s["s2"][0, 0, 0] = float("nan")
        return s

    monkeypatch.setattr(ReBEN, "__getitem__", with_nan)
    man = _pack(reben, tmp_path / "p")
    assert man["modalities"]["s2"]["dtype"] == "mixed"
    assert man["modalities"]["s2"]["stored_dtypes"] == {"float32": 3, "uint16": 6}  # index 0 of each split
    s = PackedDataset(tmp_path / "p", "train")[0]
    assert s["s2"].dtype == torch.float32 and torch.isnan(s["s2"][0, 0, 0])
