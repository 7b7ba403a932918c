"""Write a tiny, seeded fake of SEN12MS in the layout torchgeo reads.

Layout (what ``torchgeo.datasets.SEN12MS(root, split=...)`` expects, torchgeo 0.8)::

    <root>/train_list.txt, test_list.txt          one "ROIs<id>_<season>_s2_<scene>_p<patch>.tif" per line
    <root>/ROIs1158_spring/ ROIs1868_summer/ ROIs1970_fall/ ROIs2017_winter/   (all four must exist)
    <root>/ROIs1158_spring/s1_<scene>/ROIs1158_spring_s1_<scene>_p<patch>.tif   2 bands float32, VV/VH dB
    <root>/ROIs1158_spring/s2_<scene>/ROIs1158_spring_s2_<scene>_p<patch>.tif   13 bands uint16, B01..B12
                                                                                with B8A
    <root>/ROIs1158_spring/lc_<scene>/ROIs1158_spring_lc_<scene>_p<patch>.tif   4 bands uint16: IGBP (1-17),
                                                                                LCCS LC, LCCS LU, LCCS SH

Real patches are 256 x 256 at 10 m. S2 band ``j`` holds ``1000 * (j + 1) + noise`` so band order is
testable. Values are random (not real data). Usage: ``python tests/data/make_sen12ms.py OUT``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

SEASONS = ("ROIs1158_spring", "ROIs1868_summer", "ROIs1970_fall", "ROIs2017_winter")


def write_sen12ms(root: str | Path, n_train: int = 4, n_test: int = 2, side: int = 16, seed: int = 0) -> Path:
    """Write ``n_train + n_test`` patch triplets (S1, S2, LC) spread over seasons and scenes."""
    import rasterio
    from affine import Affine

    rng = np.random.default_rng(seed)
    root = Path(root)
    for s in SEASONS:
        (root / s).mkdir(parents=True, exist_ok=True)
    lists: dict[str, list[str]] = {"train": [], "test": []}
    for k in range(n_train + n_test):
        season, scene, patch = SEASONS[k % 4], 1 + k // 4, 30 + k
        arrays = {
            "s1": rng.normal([[[-11.0]], [[-18.0]]], 3.0, (2, side, side)).astype(np.float32),
            "s2": (1000 * np.arange(1, 14)[:, None, None] + rng.integers(0, 100, (13, side, side))).astype(
                np.uint16
            ),
            "lc": np.stack(
                [
                    rng.integers(1, 18, (side, side)),
                    rng.integers(1, 40, (side, side)),
                    rng.integers(1, 40, (side, side)),
                    rng.integers(1, 40, (side, side)),
                ]
            ).astype(np.uint16),
        }
        for src, arr in arrays.items():
            folder = root / season / f"{src}_{scene}"
            folder.mkdir(parents=True, exist_ok=True)
            with rasterio.open(
                folder / f"{season}_{src}_{scene}_p{patch}.tif",
                "w",
                driver="GTiff",
                width=side,
                height=side,
                count=arr.shape[0],
                dtype=arr.dtype.name,
                crs="EPSG:32633",
                transform=Affine(10.0, 0.0, 400000.0, 0.0, -10.0, 5300000.0),
            ) as dst:
                dst.write(arr)
        lists["train" if k < n_train else "test"].append(f"{season}_s2_{scene}_p{patch}.tif")
    for split, names in lists.items():
        (root / f"{split}_list.txt").write_text("\n".join(names) + "\n")
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--train", type=int, default=4)
    ap.add_argument("--test", type=int, default=2)
    ap.add_argument("--side", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(write_sen12ms(a.out, a.train, a.test, a.side, a.seed))


if __name__ == "__main__":
    main()
