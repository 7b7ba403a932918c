"""Segmentation mask codes -> contiguous class indices (land-cover masks use sparse codes).

Real land-cover masks store sparse codes (e.g. 0-4 and 8, or ESA WorldCover 10, 20, ..., 100) and a
no-data code. A :class:`MaskCodes` maps each known code to an index ``0..K-1`` (in the order the
class map lists them, or sorted when the codes are discovered); the ignore code, the raster's declared
no-data and every code not in the map become :data:`~eoreps.data.datasets.base.IGNORE_INDEX`.

Class maps (:func:`parse_mask_classes`): a file with one ``code name`` (or ``code,name``) per line
(``#`` starts a comment), or an inline ``"10:tree,20:shrub"``. Without a map, the classes are the
distinct codes found in all masks (:func:`scan_mask_codes`, one pass, cached per folder and process).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eoreps.data.datasets.base import IGNORE_INDEX
from eoreps.errors import ConfigError, DataError
from eoreps.progress import progress

_SCANS: dict[tuple, dict[int, int]] = {}


def _parse_pairs(items: Sequence[tuple[str, str]], where: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for code, name in items:
        try:
            c = int(code.strip())
        except ValueError:
            raise ConfigError(f"{where}: mask code {code.strip()!r} is not an integer; write 'code name', "
                              "e.g. '10 tree'") from None
        if c in out:
            raise ConfigError(f"{where}: mask code {c} is listed twice; give each code once")
        out[c] = name.strip() or str(c)
    if not out:
        raise ConfigError(f"{where}: no mask classes; write one 'code name' per line, e.g. '10 tree'")
    return out


def read_mask_classes_file(path: Path) -> dict[int, str]:
    """``{code: name}`` from a file of ``code name`` or ``code,name`` lines (``#`` comments allowed)."""
    items = []
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            parts = re.split(r"\s*,\s*|\s+", line, maxsplit=1)
            items.append((parts[0], parts[1] if len(parts) > 1 else ""))
    return _parse_pairs(items, str(path))


def parse_mask_classes(spec: str | Path | Mapping[int, str] | None) -> dict[int, str] | None:
    """A class map from a mapping, a file path or an inline ``"10:tree,20:shrub"`` (``None``
    stays ``None``)."""
    if spec is None or isinstance(spec, Mapping):
        return (
            None
            if spec is None
            else _parse_pairs([(str(k), str(v)) for k, v in spec.items()], "mask_classes")
        )
    text = str(spec).strip()
    if Path(text).is_file():
        return read_mask_classes_file(Path(text))
    if ":" not in text:
        raise ConfigError(f"mask_classes={text!r}: no such file and not 'code:name,...'; write e.g. "
                          "'10:tree,20:shrub' or give a file of 'code name' lines")
    return _parse_pairs(
        [tuple(p.split(":", 1)) if ":" in p else (p, "") for p in text.split(",") if p.strip()],
        f"mask_classes={text!r}",
    )


def _read_codes(path: Path) -> tuple[np.ndarray, float | None]:
    import rasterio
    from rasterio.errors import RasterioError

    from eoreps.data.datasets._raster import gdal_reason

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(path) as src:
                return src.read(1), src.nodata
    except (RasterioError, OSError, ValueError, RuntimeError) as e:
        raise DataError(
            f"{path}: corrupt or truncated GeoTIFF ({gdal_reason(e, path)}); re-export the file"
        ) from None


def scan_mask_codes(paths: Sequence[Path]) -> dict[int, int]:
    """Pixel count per code over all ``paths`` (declared no-data counted under ``IGNORE_INDEX``).

    Cached per process by the files' paths, sizes and modification times, so the train, val and test
    opens of one folder scan it once.
    """
    stats = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]
    key = tuple(stats)
    if key in _SCANS:
        return dict(_SCANS[key])
    counts: dict[int, int] = {}
    for p in progress(list(paths), desc="scanning masks", unit="mask"):
        arr, nodata = _read_codes(p)
        arr = np.asarray(arr)
        bad = (
            np.zeros(arr.shape, bool)
            if nodata is None
            else (np.isnan(arr) if np.isnan(nodata) else arr == nodata)
        )
        if np.issubdtype(arr.dtype, np.floating):
            bad |= ~np.isfinite(arr)
        if bad.any():
            counts[IGNORE_INDEX] = counts.get(IGNORE_INDEX, 0) + int(bad.sum())
        codes, n = np.unique(arr[~bad].astype(np.int64), return_counts=True)
        for c, k in zip(codes.tolist(), n.tolist(), strict=True):
            counts[c] = counts.get(c, 0) + k
    _SCANS[key] = counts
    return dict(counts)


@dataclass(frozen=True)
class MaskCodes:
    """Known mask codes, their class names, and the raw code treated as no-data.

    Attributes:
        codes: raw codes in class-index order (class ``j`` is stored as ``codes[j]``).
        names: class names, same order.
        ignore_code: raw code meaning "no label" (e.g. 255); it and unknown codes map to ``IGNORE_INDEX``.
    """

    codes: tuple[int, ...]
    names: tuple[str, ...]
    ignore_code: int | None = 255

    @classmethod
    def build(cls, class_map: dict[int, str] | None, found: Mapping[int, int] | None,
              ignore_code: int | None) -> MaskCodes:
        """From a class map, else from the codes ``found`` by a scan (sorted; ignore codes left out)."""
        if class_map is not None:
            return cls(tuple(class_map), tuple(class_map.values()), ignore_code)
        codes = sorted(c for c in (found or {}) if c not in (ignore_code, IGNORE_INDEX))
        return cls(tuple(codes), tuple(str(c) for c in codes), ignore_code)

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Raw codes (NaN = no-data) -> ``int64`` class indices with ``IGNORE_INDEX`` for the rest."""
        raw = np.asarray(raw)
        finite = np.isfinite(raw) if np.issubdtype(raw.dtype, np.floating) else np.ones(raw.shape, bool)
        vals = np.where(finite, raw, 0).astype(np.int64)
        order = np.argsort(self.codes)
        sorted_codes = np.asarray(self.codes, np.int64)[order]
        if not len(sorted_codes):
            return np.full(raw.shape, IGNORE_INDEX, np.int64)
        pos = np.clip(np.searchsorted(sorted_codes, vals), 0, len(sorted_codes) - 1)
        known = finite & (sorted_codes[pos] == vals)
        if self.ignore_code is not None:
            known &= vals != self.ignore_code
        return np.where(known, order[pos], IGNORE_INDEX).astype(np.int64)

    def shares(self, counts: Mapping[int, int]) -> tuple[dict[str, float], float]:
        """Pixel share per class and the ignored share (no-data, ignore code, unknown codes) of ``counts``."""
        total = sum(counts.values())
        if not total:
            return {n: 0.0 for n in self.names}, 0.0
        per = {n: counts.get(c, 0) / total for c, n in zip(self.codes, self.names, strict=True)}
        return per, 1.0 - sum(per.values())
