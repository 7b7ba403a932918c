"""Write a seeded, format-faithful fake of BigEarthNet v2 (reBEN) as distributed for training.

Layout and dtypes copy the real release (checked against ``../shared/data/bigearthnet/reben_v2_lmdb``)::

    <root>/metadata.parquet                                        patch_id, labels, split, country,
    <root>/metadata_for_patches_with_snow_cloud_or_shadow.parquet  s1_name, s2v1_name,
                                                                   contains_seasonal_snow,
                                                                   contains_cloud_or_shadow
    <root>/BigEarthNet-V2-LMDB/data.mdb    key = S2 or S1 patch name; value = safetensors blob:
        S2: B01..B12, B8A uint16 at native size (side, side/2, side/6 for 10/20/60 m)
        S1: VV, VH float32 dB (side, side)

The pixel values are random (not real data). The tests' tiny fakes (``tests/data/make_ben_v2.py``) and the
archive-scale benchmark (``benchmarks/stream_scale.py``, 120 px patches, tens of thousands of pairs, several
GB) both use :func:`write_ben_v2`: pixels are drawn a block of patches at a time (one NumPy call per band and
block), so writing is bounded by the disk, and memory stays at one block whatever ``n`` is.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eoreps.data.bigearthnet_classes import BEN19_CLASSES
from eoreps.errors import ConfigError

S2_GSD = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10,
          "B8A": 20, "B09": 60, "B11": 20, "B12": 20}
"""The S2 bands of a reBEN blob and their ground sampling distance in metres."""
SPLITS = ("train", "validation", "test")
LMDB_DIR = "BigEarthNet-V2-LMDB"
_BLOCK = 256  # patches drawn per NumPy call (memory: ~70 MB of pixels at 120 px)


def _labels(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """1 to 3 distinct BigEarthNet-19 class names per patch, sorted."""
    k = rng.integers(1, 4, size=n)
    order = np.argsort(rng.random((n, len(BEN19_CLASSES))), axis=1)
    names = np.array(BEN19_CLASSES, dtype=object)
    return [np.array(sorted(names[order[i, : k[i]]].tolist()), dtype=object) for i in range(n)]


def _rows(rng: np.random.Generator, n: int, n_flagged: int, splits: Sequence[str]) -> list[dict]:
    labels = _labels(rng, n + n_flagged)
    rows = []
    for i in range(n + n_flagged):
        r, c = divmod(i, 10)
        flagged = i >= n
        rows.append({
            "patch_id": f"S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_{r}_{c}",
            "labels": labels[i],
            "split": splits[i % len(splits)],
            "country": "Austria",
            "s1_name": f"S1B_IW_GRDH_1SDV_20170612T165809_33UUP_{r}_{c}",
            "s2v1_name": f"S2A_MSIL2A_20170613T101031_{r}_{c}",
            "contains_seasonal_snow": flagged and i % 2 == 0,
            "contains_cloud_or_shadow": flagged and i % 2 == 1,
        })
    return rows


Bands = dict[str, np.ndarray]


def _blocks(rng: np.random.Generator, b: int, side: int) -> tuple[Bands, Bands]:
    """Pixels of ``b`` patches: S2 band -> ``(b, s, s)`` uint16 DN, S1 band -> ``(b, side, side)`` float32
    dB."""
    s2 = {band: rng.integers(50, 6000, size=(b, side * 10 // g, side * 10 // g), dtype=np.uint16)
          for band, g in S2_GSD.items()}
    s1 = {band: rng.standard_normal((b, side, side), dtype=np.float32) * np.float32(3) + np.float32(mean)
          for band, mean in (("VV", -11.0), ("VH", -18.0))}
    return s2, s1


def patch_bytes(side: int) -> int:
    """Pixel bytes of one S2 + S1 pair of 10 m side ``side`` (what :func:`write_ben_v2` stores per pair)."""
    s2 = sum((side * 10 // g) ** 2 * 2 for g in S2_GSD.values())
    return s2 + 2 * side * side * 4


def write_ben_v2(root: str | Path, n: int = 6, n_flagged: int = 2, side: int = 12, seed: int = 0,
                 splits: Sequence[str] = SPLITS) -> Path:
    """Write ``n`` clean + ``n_flagged`` snow/cloud patches (each S2 + S1) under ``root``; returns ``root``.

    Args:
        root: the archive folder (created).
        n, n_flagged: patches listed in ``metadata.parquet`` and in the snow/cloud parquet.
        side: the 10 m patch side (120 in the real data); a multiple of 6.
        seed: seeds labels and pixels.
        splits: split names given to the patches in turn (default ``train, validation, test``; e.g. eight
            ``train`` then ``validation``, ``test`` for a training-heavy archive).
    """
    import lmdb
    import pandas as pd
    from safetensors.numpy import save

    if side <= 0 or side % 6:
        raise ConfigError(f"side={side} must be a positive multiple of 6 (60 m bands are side/6 pixels)")
    bad = [s for s in splits if s not in SPLITS]
    if not splits or bad:
        raise ConfigError(f"splits={list(splits)} must name some of {', '.join(SPLITS)}")
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / LMDB_DIR).mkdir(parents=True, exist_ok=True)
    rows = _rows(rng, n, n_flagged, splits)
    total = len(rows) * (patch_bytes(side) + 8192) * 5 // 4  # values + page rounding + tree
    # sync=False: one fsync at the end instead of one per block (the archive is complete only then anyway)
    env = lmdb.open(str(root / LMDB_DIR), map_size=max(64 << 20, total), subdir=True, sync=False)
    try:
        for lo in range(0, len(rows), _BLOCK):
            block = rows[lo:lo + _BLOCK]
            s2, s1 = _blocks(rng, len(block), side)
            with env.begin(write=True) as txn:
                for j, row in enumerate(block):
                    txn.put(row["patch_id"].encode(), save({k: v[j] for k, v in s2.items()}))
                    txn.put(row["s1_name"].encode(), save({k: v[j] for k, v in s1.items()}))
        env.sync(True)
    finally:
        env.close()
    lock = root / LMDB_DIR / "lock.mdb"
    if lock.exists():  # the distributed LMDB ships without a lock file
        lock.unlink()
    df = pd.DataFrame(rows)
    df.iloc[:n].to_parquet(root / "metadata.parquet", index=False)
    df.iloc[n:].to_parquet(root / "metadata_for_patches_with_snow_cloud_or_shadow.parquet", index=False)
    return root
