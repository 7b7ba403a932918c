"""A generic folder of co-registered GeoTIFFs that users fill with their own data.

Layout (format ``"geotiff-folder"``)::

    <root>/labels.csv               one row per sample (see below)
    <root>/<modality>/<id>.tif      one multi-band GeoTIFF per sample and modality, e.g. s2/, s1/, dem/
    <root>/mask/<id>.tif            optional single-band segmentation mask (int classes, -100 = unknown)
    <root>/classes.txt              optional class names, one per line, in index order

``labels.csv`` has an ``id`` column (file stem) and one of:

* ``label``: single-label, an integer index or a class name;
* ``labels``: multi-label, class names separated by ``;`` or ``|`` (empty = none);
* one 0/1 column per class (every column except ``id``/``split``/``target``): multi-label;
* ``target``: a float regression target;
* nothing else: unlabelled.

An optional ``split`` column (``train``/``val``/``test``) enables ``split=``. Modality folders named
like an eoreps modality (:mod:`eoreps.data.modalities`) with the matching band count get its band
names (Sentinel-2 files must then hold the 12 L2A bands in eoreps order); otherwise the GeoTIFF band
descriptions are used, else ``b1..bN``. Values are taken in the file's units (no rescaling); declared
no-data becomes NaN.

All rasters of a sample must share one ``(H, W)`` unless ``size`` is given, in which case every band is
resampled to ``size x size`` (see :mod:`eoreps.data.datasets._raster`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from eoreps.data.datasets._raster import check_mode, gdal_reason, stack_on_grid
from eoreps.data.datasets.base import IGNORE_INDEX, EODataset, Sample
from eoreps.data.modalities import MODALITIES
from eoreps.errors import ConfigError, DataError

_RESERVED = ("id", "split", "target", "label", "labels")
SPLITS = ("all", "train", "val", "test")


def is_geotiff_folder(path: Path) -> bool:
    """True if ``path`` holds ``labels.csv`` and at least one sub-folder with ``.tif`` files."""
    path = Path(path)
    if not (path / "labels.csv").is_file():
        return False
    return any(d.is_dir() and any(d.glob("*.tif")) for d in path.iterdir())


def read_raster(path: Path) -> tuple[np.ndarray, tuple[str | None, ...]]:
    """Read all bands of a GeoTIFF: ``(C, H, W)`` float32 (no-data -> NaN) and the band descriptions."""
    import rasterio
    from rasterio.errors import RasterioError

    if not path.is_file():
        raise DataError(f"{path}: raster file is missing; every sample needs one file per modality folder")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(path) as src:
                arr = src.read()
                nodata, desc = src.nodata, tuple(src.descriptions)
    except (RasterioError, OSError, ValueError, RuntimeError) as e:
        raise DataError(f"{path}: corrupt or truncated GeoTIFF ({gdal_reason(e, path)}); re-export the file") from None
    out = arr.astype(np.float32)
    if nodata is not None and not np.isnan(nodata):
        out[arr == nodata] = np.nan
    return out, desc


def _read_labels_csv(path: Path):
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype={"id": str}, keep_default_na=False)
    except Exception as e:  # pandas raises many parser/IO types; all mean "bad labels.csv"
        raise DataError(f"{path}: unreadable CSV ({' '.join(str(e).split())[:150]})") from None
    if "id" not in df.columns:
        raise DataError(f"{path}: no 'id' column; expected columns id[,label|labels|<class columns>|target][,split]")
    if df["id"].duplicated().any():
        dup = df["id"][df["id"].duplicated()].iloc[0]
        raise DataError(f"{path}: sample id {dup!r} appears twice; ids must be unique")
    return df


class GeoTiffFolder(EODataset):
    """Samples from ``<root>/<modality>/<id>.tif`` + ``labels.csv`` (see the module doc).

    Args:
        root: the folder.
        split: ``"all"`` or a value of the ``split`` column.
        modalities: modality folders to load (default: all except ``mask``).
        size: resample every band to ``size x size``; ``None`` requires equal shapes.
        resampling: ``"bilinear"``, ``"nearest"`` or ``"bicubic"`` (used only with ``size``).

    Samples: one ``(C, H, W)`` float32 tensor per modality, ``mask`` (H, W) int64 if a ``mask/``
    folder exists, ``label`` () int64 / ``multilabel`` (K,) float32 / ``target`` () float32, ``id``.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "all",
        modalities: Sequence[str] | None = None,
        size: int | None = None,
        resampling: str = "bilinear",
    ) -> None:
        self.root = Path(root)
        if not is_geotiff_folder(self.root):
            raise DataError(f"{self.root}: not a GeoTIFF folder; expected labels.csv and <modality>/<id>.tif sub-folders")
        self.size = size
        self.resampling = check_mode(resampling)
        folders = sorted(d.name for d in self.root.iterdir() if d.is_dir() and any(d.glob("*.tif")))
        self.has_mask = "mask" in folders
        available = tuple(f for f in folders if f != "mask")
        chosen = tuple(modalities) if modalities else available
        for m in chosen:
            if m not in available:
                raise ConfigError(f"modality '{m}' has no folder in {self.root}; choose from: {', '.join(available)}")
        self.modalities = chosen
        df = _read_labels_csv(self.root / "labels.csv")
        if split != "all":
            if "split" not in df.columns:
                raise ConfigError(f"{self.root / 'labels.csv'} has no 'split' column; use split='all' or add one")
            if split not in set(df["split"]):
                raise ConfigError(f"split '{split}' not found in {self.root / 'labels.csv'}; found {sorted(set(df['split']))}")
            df = df[df["split"] == split]
        self.split = split
        self._ids = [str(i) for i in df["id"]]
        for m in (*self.modalities, *(("mask",) if self.has_mask else ())):
            for i in self._ids:
                if not (self.root / m / f"{i}.tif").is_file():
                    raise DataError(f"{self.root / m / (i + '.tif')}: file is missing for sample {i!r} listed in labels.csv")
        self._parse_labels(df)
        self.band_names = {m: self._band_names(m) for m in self.modalities}

    # ---------------------------------------------------------------- labels
    def _parse_labels(self, df) -> None:
        csv_path = self.root / "labels.csv"
        names_file = self.root / "classes.txt"
        given = tuple(x.strip() for x in names_file.read_text().splitlines() if x.strip()) if names_file.is_file() else ()
        class_cols = [c for c in df.columns if c not in _RESERVED]
        self._labels: np.ndarray | None = None
        if "label" in df.columns:
            self.task = "single"
            vals = [str(v) for v in df["label"]]
            if all(v.lstrip("-").isdigit() for v in vals):
                idx = np.array([int(v) for v in vals], dtype=np.int64)
                k = max(len(given), int(idx.max()) + 1 if len(idx) else 0)
                self.classes = given or tuple(f"class_{j}" for j in range(k))
            else:
                self.classes = given or tuple(sorted(set(vals)))
                unknown = sorted(set(vals) - set(self.classes))
                if unknown:
                    raise DataError(f"{csv_path}: label {unknown[0]!r} is not in {names_file}")
                idx = np.array([self.classes.index(v) for v in vals], dtype=np.int64)
            if len(idx) and (idx.min() < 0 or idx.max() >= len(self.classes)):
                raise DataError(f"{csv_path}: label index out of range 0..{len(self.classes) - 1}")
            self._labels = idx
        elif "labels" in df.columns:
            self.task = "multi"
            lists = [[s.strip() for s in str(v).replace("|", ";").split(";") if s.strip()] for v in df["labels"]]
            self.classes = given or tuple(sorted({c for row in lists for c in row}))
            m = np.zeros((len(lists), len(self.classes)), dtype=np.float32)
            for r, row in enumerate(lists):
                for c in row:
                    if c not in self.classes:
                        raise DataError(f"{csv_path}: class {c!r} is not in {names_file}")
                    m[r, self.classes.index(c)] = 1.0
            self._labels = m
        elif class_cols:
            self.task = "multi"
            self.classes = tuple(class_cols)
            try:
                m = df[class_cols].to_numpy(dtype=np.float32)
            except ValueError:
                raise DataError(f"{csv_path}: class columns {class_cols} must hold 0/1 values") from None
            if not np.isin(m, (0.0, 1.0)).all():
                raise DataError(f"{csv_path}: class columns {class_cols} must hold 0/1 values")
            self._labels = m
        else:
            self.task = "none"
            self.classes = ()
        self._target = None
        if "target" in df.columns:
            try:
                self._target = df["target"].to_numpy(dtype=np.float32)
            except ValueError:
                raise DataError(f"{csv_path}: 'target' column must be numeric") from None
            if self.task == "none":
                self.task = "regression"

    def _band_names(self, m: str) -> tuple[str, ...]:
        import rasterio

        first = self.root / m / f"{self._ids[0]}.tif" if self._ids else None
        if first is None:
            return ()
        try:
            with rasterio.open(first) as src:
                count, desc = src.count, tuple(src.descriptions)
        except Exception as e:  # rasterio/GDAL error types vary by driver; all mean a bad file
            raise DataError(f"{first}: corrupt or truncated GeoTIFF ({gdal_reason(e, first)}); re-export the file") from None
        known = MODALITIES.get(m)
        if known is not None and known.num_bands == count:
            return known.bands
        if all(desc) and len(set(desc)) == count:
            return tuple(str(d) for d in desc)
        return tuple(f"b{j + 1}" for j in range(count))

    # ---------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> list[str]:
        """Sample ids (file stems) in index order."""
        return list(self._ids)

    def __getitem__(self, index: int) -> Sample:
        sid = self._ids[index]
        sample: Sample = {"id": sid}
        shape: tuple[int, int] | None = None
        first: Path | None = None
        for m in self.modalities:
            path = self.root / m / f"{sid}.tif"
            arr, _ = read_raster(path)
            if arr.shape[0] != len(self.band_names[m]):
                raise DataError(f"{path}: {arr.shape[0]} bands but {m} files have {len(self.band_names[m])}; re-export it")
            if self.size is not None:
                arr = stack_on_grid(list(arr), self.size, self.resampling)
            elif shape is None:
                shape, first = arr.shape[1:], path
            elif arr.shape[1:] != shape:
                raise DataError(f"{path}: shape {arr.shape[1:]} differs from {first} {shape}; give size= to resample")
            sample[m] = torch.from_numpy(np.ascontiguousarray(arr))
        if self.has_mask:
            path = self.root / "mask" / f"{sid}.tif"
            arr, _ = read_raster(path)
            if self.size is not None:
                arr = stack_on_grid(list(arr[:1]), self.size, "nearest")
            elif shape is not None and arr.shape[1:] != shape:
                raise DataError(f"{path}: mask shape {arr.shape[1:]} differs from {first} {shape}")
            mask = np.where(np.isnan(arr[0]), IGNORE_INDEX, arr[0]).astype(np.int64)
            sample["mask"] = torch.from_numpy(mask)
        if self._labels is not None:
            pos = index
            if self.task == "single":
                sample["label"] = torch.tensor(int(self._labels[pos]), dtype=torch.int64)
            else:
                sample["multilabel"] = torch.from_numpy(self._labels[pos].copy())
        if self._target is not None:
            sample["target"] = torch.tensor(float(self._target[index]), dtype=torch.float32)
        return sample

    def label_matrix(self) -> torch.Tensor:
        """Labels from ``labels.csv`` only: ``(N,)`` int64 (single) or ``(N, K)`` float32 (multi)."""
        if self._labels is None:
            raise ConfigError(f"{self.root / 'labels.csv'} has no class labels (task '{self.task}')")
        return torch.from_numpy(self._labels.copy())
