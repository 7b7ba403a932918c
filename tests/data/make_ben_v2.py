"""Write a tiny, seeded, format-faithful fake of BigEarthNet v2 (reBEN) as distributed for training.

Layout and dtypes copy the real release (checked against ../shared/data/bigearthnet/reben_v2_lmdb)::

    <root>/metadata.parquet                                        patch_id, labels, split, country,
    <root>/metadata_for_patches_with_snow_cloud_or_shadow.parquet  s1_name, s2v1_name,
                                                                   contains_seasonal_snow,
                                                                   contains_cloud_or_shadow
    <root>/BigEarthNet-V2-LMDB/data.mdb    key = S2 or S1 patch name; value = safetensors blob:
        S2: B01..B12, B8A uint16 at native size (side, side/2, side/6 for 10/20/60 m)
        S1: VV, VH float32 dB (side, side)

The pixel values are random (not real data). Usage: ``python tests/data/make_ben_v2.py OUT [--seed 0]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

BEN19 = (
    "Urban fabric", "Industrial or commercial units", "Arable land", "Permanent crops", "Pastures",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas", "Broad-leaved forest", "Coniferous forest", "Mixed forest",
    "Natural grassland and sparsely vegetated areas", "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland, shrub", "Beaches, dunes, sands", "Inland wetlands", "Coastal wetlands",
    "Inland waters", "Marine waters",
)
S2_GSD = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10,
          "B8A": 20, "B09": 60, "B11": 20, "B12": 20}
SPLITS = ("train", "validation", "test")


def _s2_blob(rng: np.random.Generator, side: int) -> dict[str, np.ndarray]:
    return {
        b: rng.integers(50, 6000, size=(side * 10 // g, side * 10 // g)).astype(np.uint16)
        for b, g in S2_GSD.items()
    }


def _s1_blob(rng: np.random.Generator, side: int) -> dict[str, np.ndarray]:
    return {"VV": rng.normal(-11, 3, (side, side)).astype(np.float32),
            "VH": rng.normal(-18, 3, (side, side)).astype(np.float32)}


def write_ben_v2(root: str | Path, n: int = 6, n_flagged: int = 2, side: int = 12, seed: int = 0) -> Path:
    """Write ``n`` clean + ``n_flagged`` snow/cloud patches (each S2 + S1) under ``root``; returns ``root``.

    ``side`` is the 10 m patch side (120 in the real data) and must be a multiple of 6.
    """
    import lmdb
    import pandas as pd
    from safetensors.numpy import save

    if side % 6:
        raise ValueError("side must be a multiple of 6 (60 m bands are side/6 pixels)")
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "BigEarthNet-V2-LMDB").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n + n_flagged):
        r, c = divmod(i, 10)
        k = int(rng.integers(1, 4))
        labels = sorted(rng.choice(BEN19, size=k, replace=False).tolist())
        flagged = i >= n
        rows.append({
            "patch_id": f"S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_{r}_{c}",
            "labels": np.array(labels, dtype=object),
            "split": SPLITS[i % 3],
            "country": "Austria",
            "s1_name": f"S1B_IW_GRDH_1SDV_20170612T165809_33UUP_{r}_{c}",
            "s2v1_name": f"S2A_MSIL2A_20170613T101031_{r}_{c}",
            "contains_seasonal_snow": flagged and i % 2 == 0,
            "contains_cloud_or_shadow": flagged and i % 2 == 1,
        })
    env = lmdb.open(str(root / "BigEarthNet-V2-LMDB"), map_size=64 << 20, subdir=True)
    with env.begin(write=True) as txn:
        for row in rows:
            txn.put(row["patch_id"].encode(), save(_s2_blob(rng, side)))
            txn.put(row["s1_name"].encode(), save(_s1_blob(rng, side)))
    env.close()
    lock = root / "BigEarthNet-V2-LMDB" / "lock.mdb"
    if lock.exists():  # the distributed LMDB ships without a lock file
        lock.unlink()
    df = pd.DataFrame(rows)
    df.iloc[:n].to_parquet(root / "metadata.parquet", index=False)
    df.iloc[n:].to_parquet(root / "metadata_for_patches_with_snow_cloud_or_shadow.parquet", index=False)
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--flagged", type=int, default=2)
    ap.add_argument("--side", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(write_ben_v2(a.out, a.n, a.flagged, a.side, a.seed))


if __name__ == "__main__":
    main()
