"""Write a tiny, seeded example of the generic paired-GeoTIFF folder (format ``"geotiff-folder"``).

::

    <root>/s2/<id>.tif     12-band uint16 GeoTIFF (L2A bands in eoreps order), UTM 33N, 10 m
    <root>/s1/<id>.tif     2-band float32 (VV, VH dB), same grid
    <root>/dem/<id>.tif    1-band float32 metres, same grid, no-data -9999 in one corner of sample 0
    <root>/mask/<id>.tif   optional 1-band uint8 segmentation mask (codes ``mask_codes``, no-data
                           ``mask_nodata``)
    <root>/labels.csv      id, label | labels | <class columns>, split (header names configurable)

Random values (not real data). Usage: ``python tests/data/make_geotiff_folder.py OUT [--task single]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

CLASSES = ("forest", "water", "urban", "crops")


def _write(
    path: Path, arr: np.ndarray, nodata: float | None = None, descriptions: tuple[str, ...] | None = None
) -> None:
    import rasterio
    from affine import Affine

    path.parent.mkdir(parents=True, exist_ok=True)
    c, h, w = arr.shape
    with rasterio.open(
        path, "w", driver="GTiff", height=h, width=w, count=c, dtype=arr.dtype.name,
        crs="EPSG:32633", transform=Affine(10.0, 0.0, 404400.0, 0.0, -10.0, 5342400.0), nodata=nodata,
    ) as dst:
        dst.write(arr)
        if descriptions:
            for i, d in enumerate(descriptions, start=1):
                dst.set_band_description(i, d)


def write_geotiff_folder(
    root: str | Path, n: int = 8, side: int = 16, task: str = "single", mask: bool = False, seed: int = 0,
    id_header: str = "id", split: bool = True, mask_codes: Sequence[int] = (0, 1, 2, 3),
    mask_nodata: int | None = None, empty_s1: Sequence[int] = (),
) -> Path:
    """Write ``n`` samples; ``task`` is ``"single"`` (label names), ``"multi"`` (``labels`` column with
    ``;``-separated names), ``"columns"`` (one 0/1 column per class) or ``"regression"`` (``target``).

    ``id_header`` names the id column; ``split=False`` leaves out the split column; masks draw their
    pixels from ``mask_codes`` and, with ``mask_nodata``, carry that code in their top-left 2 x 2 corner;
    the s1 files of the samples numbered in ``empty_s1`` are entirely no-data."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    rows = []
    for i in range(n):
        sid = f"patch_{i:03d}"
        _write(root / "s2" / f"{sid}.tif", rng.integers(100, 5000, (12, side, side)).astype(np.uint16))
        s1 = rng.normal(-12, 3, (2, side, side)).astype(np.float32)
        if i in empty_s1:
            s1[:] = -9999.0
        _write(
            root / "s1" / f"{sid}.tif",
            s1,
            nodata=-9999.0 if i in empty_s1 else None,
            descriptions=("VV", "VH"),
        )
        dem = rng.normal(400, 50, (1, side, side)).astype(np.float32)
        if i == 0:
            dem[0, :2, :2] = -9999.0
        _write(root / "dem" / f"{sid}.tif", dem, nodata=-9999.0)
        if mask:
            codes = np.asarray(mask_codes)[rng.integers(0, len(mask_codes), (1, side, side))].astype(np.uint8)
            if mask_nodata is not None:
                codes[0, :2, :2] = mask_nodata
            _write(root / "mask" / f"{sid}.tif", codes)
        row = {id_header: sid}
        if task == "single":
            row["label"] = CLASSES[i % len(CLASSES)]
        elif task == "multi":
            row["labels"] = ";".join(c for j, c in enumerate(CLASSES) if (i >> j) & 1)
        elif task == "columns":
            row.update({c: int((i >> j) & 1) for j, c in enumerate(CLASSES)})
        elif task == "regression":
            row["target"] = float(rng.normal())
        else:
            raise ValueError(f"unknown task {task!r}")
        if split:
            row["split"] = ("train", "train", "val", "test")[i % 4]
        rows.append(row)
    cols = list(rows[0])
    lines = [",".join(cols)] + [",".join(str(r[c]) for c in cols) for r in rows]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--side", type=int, default=16)
    ap.add_argument("--task", default="single", choices=("single", "multi", "columns", "regression"))
    ap.add_argument("--mask", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--id-header", default="id", help="Name of the id column (e.g. sample_id).")
    ap.add_argument("--no-split", action="store_true", help="Leave out the split column.")
    ap.add_argument("--mask-codes", default="0,1,2,3", help="Comma-separated mask codes, e.g. 0,1,2,3,4,8.")
    ap.add_argument("--mask-nodata", type=int, default=None, help="No-data code in a corner of every mask.")
    a = ap.parse_args()
    codes = [int(c) for c in a.mask_codes.split(",")]
    print(
        write_geotiff_folder(
            a.out,
            a.n,
            a.side,
            a.task,
            a.mask,
            a.seed,
            id_header=a.id_header,
            split=not a.no_split,
            mask_codes=codes,
            mask_nodata=a.mask_nodata,
        )
    )


if __name__ == "__main__":
    main()
