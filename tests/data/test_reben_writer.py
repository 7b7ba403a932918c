"""The reBEN-layout generator (``eoreps.data.reben_writer``): layout, dtypes, splits, seeding."""

from __future__ import annotations

import pandas as pd
import pytest

from eoreps.data.datasets.reben import ReBEN
from eoreps.data.reben_writer import LMDB_DIR, patch_bytes, write_ben_v2
from eoreps.errors import ConfigError


def _blob(root, key):
    import lmdb
    from safetensors.numpy import load

    env = lmdb.open(str(root / LMDB_DIR), readonly=True, lock=False)
    with env.begin() as txn:
        out = load(txn.get(key.encode()))
    env.close()
    return out


def test_blocks_of_patches_native_dtypes_and_splits(tmp_path):
    splits = ("train",) * 3 + ("test",)
    root = write_ben_v2(tmp_path / "a", n=300, n_flagged=2, side=12, seed=5, splits=splits)
    meta = pd.read_parquet(root / "metadata.parquet")
    assert len(meta) == 300 and meta["split"].value_counts().to_dict() == {"train": 225, "test": 75}
    assert meta["patch_id"].is_unique and meta["labels"].map(len).between(1, 3).all()
    s2, s1 = _blob(root, meta["patch_id"][299]), _blob(root, meta["s1_name"][299])  # past the first block
    assert s2["B02"].dtype.name == "uint16" and s2["B02"].shape == (12, 12) and s2["B01"].shape == (2, 2)
    assert s2["B05"].shape == (6, 6) and s1["VV"].dtype.name == "float32" and s1["VH"].shape == (12, 12)
    assert sum(a.nbytes for a in (*s2.values(), *s1.values())) == patch_bytes(12)
    assert len(ReBEN(root, split="train")) == 225 and ReBEN(root).num_excluded == 2
    again = write_ben_v2(tmp_path / "b", n=300, n_flagged=2, side=12, seed=5, splits=splits)
    assert (_blob(again, meta["patch_id"][299])["B04"] == s2["B04"]).all()  # seeded


@pytest.mark.parametrize("kw", [{"side": 10}, {"splits": ("train", "holdout")}])
def test_bad_arguments_are_config_errors(tmp_path, kw):
    with pytest.raises(ConfigError, match="side=10|holdout"):
        write_ben_v2(tmp_path / "x", n=2, **kw)
