"""A generic folder of co-registered GeoTIFFs that users fill with their own data.

Layout (format ``"geotiff-folder"``)::

    <root>/labels.csv               one row per sample (see below)
    <root>/<modality>/<id>.tif      one multi-band GeoTIFF per sample and modality, e.g. s2/, s1/, dem/
    <root>/mask/<id>.tif            optional single-band segmentation mask of integer codes
    <root>/classes.txt              optional class names, one per line, in index order
    <root>/mask_classes.txt         optional mask class map, one ``code name`` (or ``code,name``) per line

``labels.csv`` has an id column (file stem; the first of ``id``, ``sample_id``, ``patch_id``, ``name``,
or ``id_column``) and one of:

* ``label``: single-label, an integer index or a class name (an empty label is an error);
* ``labels``: multi-label, class names separated by ``;`` or ``|`` (empty = none);
* one 0/1 column per class (every column except id/split/``target``): multi-label;
* ``target``: a float regression target;
* nothing else: unlabelled.

**Classes** are fixed once for the whole file (all rows, before any split is taken): ``classes.txt``
when present, else the sorted names found in every row. So train, val and test agree on the indices.

**Splits.** A ``split`` column (or ``split_column``) with ``train``/``val``/``test`` selects the rows of
``split=``. Without one, a seeded split stratified by the labels is drawn over all rows
(``split_ratios``, ``split_seed``; :func:`eoreps.data.splits.assign_splits`), so every open of the
folder with the same options gets the same disjoint train/val/test; :attr:`GeoTiffFolder.split_info`
records how.

**Masks** hold integer codes, often sparse (land cover: 0-4 and 8; ESA WorldCover 10, 20, ..., 100).
The mask class map (``mask_classes``, else ``mask_classes.txt``, else the sorted codes found by one
scan of all masks) maps codes to indices ``0..K-1`` (:attr:`GeoTiffFolder.mask_classes`); the
``ignore_index`` code (default 255), the declared no-data and any code not in the map become
``IGNORE_INDEX`` (see :mod:`eoreps.data.datasets._mask_codes`).

**No-data.** Values are taken in the file's units (no rescaling); declared no-data becomes NaN. A
sample whose modality is entirely no-data cannot be learnt from: reading it raises a one-line
:class:`~eoreps.errors.DataError` naming the file, unless ``skip_nodata=True``, which reads the split
once up front and leaves such samples out (their number is :attr:`GeoTiffFolder.num_skipped_nodata`).

Modality folders named like an eoreps modality (:mod:`eoreps.data.modalities`) with the matching band
count get its band names (Sentinel-2 files must then hold the 12 L2A bands in eoreps order); otherwise
the GeoTIFF band descriptions are used, else ``b1..bN``. All rasters of a sample must share one
``(H, W)`` unless ``size`` is given, in which case every band is resampled to ``size x size`` (see
:mod:`eoreps.data.datasets._raster`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from eoreps.data.datasets._mask_codes import (
    MaskCodes,
    parse_mask_classes,
    read_mask_classes_file,
    scan_mask_codes,
)
from eoreps.data.datasets._raster import check_mode, gdal_reason, stack_on_grid
from eoreps.data.datasets.base import EODataset, Sample
from eoreps.data.modalities import MODALITIES
from eoreps.data.splits import SPLIT_NAMES, assign_splits, check_split_ratios
from eoreps.errors import ConfigError, DataError
from eoreps.progress import progress

ID_COLUMNS = ("id", "sample_id", "patch_id", "name")
"""Id column names recognised in ``labels.csv``, in order of preference."""
_LABEL_COLUMNS = ("target", "label", "labels")
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
        raise DataError(
            f"{path}: corrupt or truncated GeoTIFF ({gdal_reason(e, path)}); re-export the file"
        ) from None
    out = arr.astype(np.float32)
    if nodata is not None and not np.isnan(nodata):
        out[arr == nodata] = np.nan
    return out, desc


def _read_labels_csv(path: Path, id_column: str | None = None):
    """``labels.csv`` as strings (no NaN conversion) and the name of its id column."""
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as e:  # pandas raises many parser/IO types; all mean "bad labels.csv"
        raise DataError(f"{path}: unreadable CSV ({' '.join(str(e).split())[:150]})") from None
    if id_column is not None and id_column not in df.columns:
        raise ConfigError(
            f"{path}: id_column={id_column!r} is not a column; columns: {', '.join(df.columns)}"
        )
    col = id_column or next((c for c in ID_COLUMNS if c in df.columns), None)
    if col is None:
        raise DataError(f"{path}: no id column ({'/'.join(ID_COLUMNS)}); rename yours or pass id_column=NAME "
                        "(columns: id[,label|labels|<class columns>|target][,split])")
    if df[col].duplicated().any():
        dup = df[col][df[col].duplicated()].iloc[0]
        raise DataError(f"{path}: sample id {dup!r} appears twice; ids must be unique")
    return df, col


class GeoTiffFolder(EODataset):
    """Samples from ``<root>/<modality>/<id>.tif`` + ``labels.csv`` (see the module doc).

    Args:
        root: the folder.
        split: ``"all"``, ``"train"``, ``"val"`` or ``"test"`` (or another value of the split column).
        modalities: modality folders to load (default: all except ``mask``).
        size: resample every band to ``size x size``; ``None`` requires equal shapes.
        resampling: ``"bilinear"``, ``"nearest"`` or ``"bicubic"`` (used only with ``size``).
        id_column: id column of ``labels.csv`` (default: the first of :data:`ID_COLUMNS` present).
        split_column: split column (default ``"split"`` when present; otherwise an automatic split).
        split_ratios: train/val/test shares of the automatic split (``(0.7, 0.15, 0.15)``).
        split_seed: seed of the automatic split (``eoreps`` commands pass the run's ``--seed``).
        mask_classes: mask class map: ``{code: name}``, a ``"10:tree,20:shrub"`` string or a file of
            ``code name`` lines (default: ``mask_classes.txt`` if present, else the codes found).
        ignore_index: the mask code meaning "no label" (mapped to ``IGNORE_INDEX``); ``None``: none.
        skip_nodata: leave out samples with a modality that is entirely no-data (else reading one fails).

    Samples: one ``(C, H, W)`` float32 tensor per modality, ``mask`` (H, W) int64 class indices if a
    ``mask/`` folder exists, ``label`` () int64 / ``multilabel`` (K,) float32 / ``target`` () float32, ``id``.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "all",
        modalities: Sequence[str] | None = None,
        size: int | None = None,
        resampling: str = "bilinear",
        id_column: str | None = None,
        split_column: str | None = None,
        split_ratios: Sequence[float] | str = (0.7, 0.15, 0.15),
        split_seed: int = 0,
        mask_classes: str | Path | dict[int, str] | None = None,
        ignore_index: int | None = 255,
        skip_nodata: bool = False,
    ) -> None:
        self.root = Path(root)
        if not is_geotiff_folder(self.root):
            raise DataError(
                f"{self.root}: not a GeoTIFF folder; expected labels.csv and <modality>/<id>.tif sub-folders"
            )
        self.size = size
        self.resampling = check_mode(resampling)
        folders = sorted(d.name for d in self.root.iterdir() if d.is_dir() and any(d.glob("*.tif")))
        self.has_mask = "mask" in folders
        available = tuple(f for f in folders if f != "mask")
        chosen = tuple(modalities) if modalities else available
        for m in chosen:
            if m not in available:
                raise ConfigError(
                    f"modality '{m}' has no folder in {self.root}; choose from: {', '.join(available)}"
                )
        self.modalities = chosen
        csv_path = self.root / "labels.csv"
        df, self.id_column = _read_labels_csv(csv_path, id_column)
        if split_column is not None and split_column not in df.columns:
            raise ConfigError(f"{csv_path}: split_column={split_column!r} is not a column; "
                              f"columns: {', '.join(df.columns)}")
        self.split_column = split_column or ("split" if "split" in df.columns else None)
        self._all_ids = [str(i) for i in df[self.id_column]]
        self._parse_labels(df)  # classes from ALL rows, before the split filter
        self.split = split
        rows = self._split_rows(df, split, split_ratios, int(split_seed))
        self._ids = [self._all_ids[i] for i in rows]
        if self._labels is not None:
            self._labels = self._labels[rows]
        if self._target is not None:
            self._target = self._target[rows]
        for m in (*self.modalities, *(("mask",) if self.has_mask else ())):
            for i in self._ids:
                if not (self.root / m / f"{i}.tif").is_file():
                    raise DataError(
                        f"{self.root / m / (i + '.tif')}: file is missing for sample {i!r} listed in "
                        "labels.csv"
                    )
        self.band_names = {m: self._band_names(m) for m in self.modalities}
        self._mask_map = parse_mask_classes(mask_classes)
        if self._mask_map is None and (self.root / "mask_classes.txt").is_file():
            self._mask_map = read_mask_classes_file(self.root / "mask_classes.txt")
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        self._mask_codes: MaskCodes | None = None
        self.strict_nodata = True
        self.skipped_nodata: list[tuple[str, str]] = []
        if skip_nodata:
            self._drop_nodata()

    # ---------------------------------------------------------------- splits
    def _split_rows(self, df, split: str, ratios: Sequence[float] | str, seed: int) -> np.ndarray:
        csv_path = self.root / "labels.csv"
        n = len(df)
        check_split_ratios(ratios)
        if self.split_column is not None:
            found = sorted(set(df[self.split_column]))
            self.split_info = {"source": f"column {self.split_column!r}",
                               "counts": {s: int((df[self.split_column] == s).sum()) for s in found}}
            if split == "all":
                return np.arange(n)
            if split not in found:
                raise ConfigError(f"split '{split}' not found in column {self.split_column!r} of {csv_path}; "
                                  f"found {found}")
            return np.flatnonzero((df[self.split_column] == split).to_numpy())
        if split == "all":
            self.split_info = {"source": "no split column (train/val/test are drawn by split_ratios, seed)",
                               "counts": {"all": n}}
            return np.arange(n)
        if split not in SPLIT_NAMES:
            raise ConfigError(
                f"split '{split}' is not one of {', '.join(SPLIT_NAMES)} (automatic split of {csv_path}, "
                "which has no split column)"
            )
        strata = self._labels if self._labels is not None else np.zeros(n, np.int64)
        assigned = assign_splits(strata, ratios, seed)
        self.split_info = {
            "source": "automatic, stratified",
            "ratios": list(check_split_ratios(ratios)),
            "seed": seed,
            "counts": {s: int((assigned == s).sum()) for s in SPLIT_NAMES},
        }
        return np.flatnonzero(assigned == split)

    # ---------------------------------------------------------------- labels
    def _parse_labels(self, df) -> None:
        csv_path = self.root / "labels.csv"
        names_file = self.root / "classes.txt"
        given = (
            tuple(x.strip() for x in names_file.read_text().splitlines() if x.strip())
            if names_file.is_file()
            else ()
        )
        reserved = {self.id_column, self.split_column, *_LABEL_COLUMNS}
        class_cols = [c for c in df.columns if c not in reserved]
        self._labels: np.ndarray | None = None
        if "label" in df.columns:
            self.task = "single"
            vals = [str(v).strip() for v in df["label"]]
            empty = [r for r, v in enumerate(vals) if not v]
            if empty:
                r = empty[0]
                raise DataError(
                    f"{csv_path}: row {r + 1} (line {r + 2}, sample {self._all_ids[r]!r}) has an empty "
                    f"label; fill in its class or remove the row ({len(empty)} empty in all)"
                )
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
            lists = [
                [s.strip() for s in str(v).replace("|", ";").split(";") if s.strip()] for v in df["labels"]
            ]
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
            raise DataError(
                f"{first}: corrupt or truncated GeoTIFF ({gdal_reason(e, first)}); re-export the file"
            ) from None
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

    def _read_modality(self, sid: str, m: str) -> tuple[np.ndarray, Path]:
        path = self.root / m / f"{sid}.tif"
        arr, _ = read_raster(path)
        if arr.shape[0] != len(self.band_names[m]):
            raise DataError(
                f"{path}: {arr.shape[0]} bands but {m} files have {len(self.band_names[m])}; re-export it"
            )
        if self.strict_nodata and arr.size and np.isnan(arr).all():
            raise DataError(
                f"{path}: every pixel is no-data (sample {sid!r}); remove the sample from labels.csv "
                "or pass skip_nodata=True to leave such samples out"
            )
        return arr, path

    def __getitem__(self, index: int) -> Sample:
        sid = self._ids[index]
        sample: Sample = {"id": sid}
        shape: tuple[int, int] | None = None
        first: Path | None = None
        for m in self.modalities:
            arr, path = self._read_modality(sid, m)
            if self.size is not None:
                arr = stack_on_grid(list(arr), self.size, self.resampling)
            elif shape is None:
                shape, first = arr.shape[1:], path
            elif arr.shape[1:] != shape:
                raise DataError(
                    f"{path}: shape {arr.shape[1:]} differs from {first} {shape}; give size= to resample"
                )
            sample[m] = torch.from_numpy(np.ascontiguousarray(arr))
        if self.has_mask:
            path = self.root / "mask" / f"{sid}.tif"
            arr, _ = read_raster(path)
            if self.size is not None:
                arr = stack_on_grid(list(arr[:1]), self.size, "nearest")
            elif shape is not None and arr.shape[1:] != shape:
                raise DataError(f"{path}: mask shape {arr.shape[1:]} differs from {first} {shape}")
            sample["mask"] = torch.from_numpy(self.mask_codes.apply(arr[0]))
        if self._labels is not None:
            if self.task == "single":
                sample["label"] = torch.tensor(int(self._labels[index]), dtype=torch.int64)
            else:
                sample["multilabel"] = torch.from_numpy(self._labels[index].copy())
        if self._target is not None:
            sample["target"] = torch.tensor(float(self._target[index]), dtype=torch.float32)
        return sample

    # ---------------------------------------------------------------- masks
    def _mask_paths(self) -> list[Path]:
        return [self.root / "mask" / f"{i}.tif" for i in self._all_ids]

    @property
    def mask_codes(self) -> MaskCodes:
        """The code -> class map of the masks (scans every mask of the folder once when no map is given)."""
        if self._mask_codes is None:
            found = None if self._mask_map is not None else scan_mask_codes(self._mask_paths())
            self._mask_codes = MaskCodes.build(self._mask_map, found, self.ignore_index)
        return self._mask_codes

    @property
    def mask_classes(self) -> tuple[str, ...]:
        """Segmentation class names, index order (``()`` without a ``mask/`` folder)."""
        return self.mask_codes.names if self.has_mask else ()

    def mask_pixel_report(self) -> dict[str, object]:
        """Pixel share per mask class and the ignored share over every mask of the folder
        (one cached scan)."""
        if not self.has_mask:
            return {}
        counts = scan_mask_codes(self._mask_paths())
        shares, ignored = self.mask_codes.shares(counts)
        total = sum(counts.values())
        return {
            "codes": dict(zip(self.mask_codes.names, self.mask_codes.codes, strict=True)),
            "shares": shares,
            "ignored_share": ignored,
            "ignored_pixels": int(round(ignored * total)),
            "pixels": int(total),
        }

    # ---------------------------------------------------------------- no-data
    def nodata_samples(self) -> list[tuple[str, str]]:
        """``(id, modality)`` of every modality of this split that is entirely no-data (reads every file)."""
        out = []
        for sid in progress(self._ids, desc="checking no-data", unit="sample"):
            for m in self.modalities:
                arr, _ = read_raster(self.root / m / f"{sid}.tif")
                if arr.size and np.isnan(arr).all():
                    out.append((sid, m))
        return out

    def _drop_nodata(self) -> None:
        self.skipped_nodata = self.nodata_samples()
        bad = {sid for sid, _ in self.skipped_nodata}
        if not bad:
            return
        keep = np.array([i not in bad for i in self._ids])
        self._ids = [i for i in self._ids if i not in bad]
        if self._labels is not None:
            self._labels = self._labels[keep]
        if self._target is not None:
            self._target = self._target[keep]

    @property
    def num_skipped_nodata(self) -> int:
        """Samples left out by ``skip_nodata`` (a modality entirely no-data)."""
        return len({sid for sid, _ in self.skipped_nodata})

    def describe(self) -> dict[str, object]:
        """What a run used (results.json, pretrain.json): classes, id column, split rule, mask classes."""
        out: dict[str, object] = {
            **super().describe(),
            "id_column": self.id_column,
            "splits": dict(self.split_info),
        }
        if self.has_mask:
            out["mask_classes"] = list(self.mask_classes)
            out["mask_codes"] = list(self.mask_codes.codes)
            out["mask_ignore_code"] = self.ignore_index
            report = self.mask_pixel_report()
            out["mask_ignored_pixels"] = {k: report[k] for k in ("ignored_pixels", "pixels", "ignored_share")}
        return out

    def label_matrix(self) -> torch.Tensor:
        """Labels from ``labels.csv`` only: ``(N,)`` int64 (single) or ``(N, K)`` float32 (multi)."""
        if self._labels is None:
            raise ConfigError(f"{self.root / 'labels.csv'} has no class labels (task '{self.task}')")
        return torch.from_numpy(self._labels.copy())
