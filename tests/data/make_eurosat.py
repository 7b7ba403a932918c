"""Write a tiny, seeded fake of EuroSAT multispectral (EuroSATallBands) in the layout torchgeo reads.

Layout (what ``torchgeo.datasets.EuroSAT(root, split=..., download=False)`` expects, torchgeo 0.8)::

    <root>/eurosat-train.txt, eurosat-val.txt, eurosat-test.txt   one "<Class>_<i>.jpg" per line
    <root>/ds/images/remote_sensing/otherDatasets/sentinel_2/tif/<Class>/<Class>_<i>.tif

Each ``.tif`` is a 13-band uint16 GeoTIFF (real ones: 64 x 64, 10 m, UTM) with bands in torchgeo's
order B01..B09, B10, B11, B12, B8A. Band ``j`` holds ``1000 * (j + 1) + noise`` so tests can tell
the bands apart after reordering. The split files name ``.jpg`` files as the official lists do.
Values are random (not real data). Usage: ``python tests/data/make_eurosat.py OUT [--per-class 4]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

CLASSES = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
           "PermanentCrop", "Residential", "River", "SeaLake")
BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A")
BASE = Path("ds", "images", "remote_sensing", "otherDatasets", "sentinel_2", "tif")


def write_eurosat(root: str | Path, per_class: int = 4, side: int = 16, seed: int = 0) -> Path:
    """Write ``per_class`` (>= 3: one each for train/val/test, rest train) images per class."""
    import rasterio
    from affine import Affine

    if per_class < 3:
        raise ValueError(
            "per_class must be >= 3 so every split has every class (torchvision ImageFolder needs it)"
        )
    rng = np.random.default_rng(seed)
    root = Path(root)
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for cls in CLASSES:
        (root / BASE / cls).mkdir(parents=True, exist_ok=True)
        for i in range(1, per_class + 1):
            name = f"{cls}_{i}"
            arr = (1000 * np.arange(1, 14)[:, None, None] + rng.integers(0, 100, (13, side, side))).astype(
                np.uint16
            )
            with rasterio.open(
                root / BASE / cls / f"{name}.tif",
                "w",
                driver="GTiff",
                width=side,
                height=side,
                count=13,
                dtype="uint16",
                crs="EPSG:32631",
                transform=Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5500000.0),
            ) as dst:
                dst.write(arr)
            split = "val" if i == 2 else "test" if i == 3 else "train"
            splits[split].append(f"{name}.jpg")
    for split, names in splits.items():
        (root / f"eurosat-{split}.txt").write_text("\n".join(names) + "\n")
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--per-class", type=int, default=4)
    ap.add_argument("--side", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(write_eurosat(a.out, a.per_class, a.side, a.seed))


if __name__ == "__main__":
    main()
