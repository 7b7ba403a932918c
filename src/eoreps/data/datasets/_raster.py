"""GeoTIFF reading with user-facing errors, and bringing bands of several resolutions to one grid.

Shared by the BigEarthNet v1 and generic GeoTIFF-folder loaders. Every rasterio/GDAL failure (missing,
truncated or corrupt file) becomes a one-line :class:`~eoreps.errors.DataError` naming the file.

Resampling choice (documented for users): bands coarser than the target grid (BigEarthNet's 20 m and
60 m Sentinel-2 bands on the 10 m, 120 x 120 grid) are upsampled with ``torch.nn.functional.interpolate``
``mode="bilinear", align_corners=False``. With ``align_corners=False`` a pixel is an area, so a 20 m
pixel maps exactly onto its 2 x 2 block of 10 m pixels and no half-pixel shift is introduced between
bands (``align_corners=True`` would shift the coarse bands by up to half a coarse pixel). Bands finer
than the target are downsampled with the same mode and ``antialias=True`` (area-like averaging).
``"nearest"`` keeps original values (no new radiometry) and ``"bicubic"`` is sharper but overshoots;
both are offered. GDAL's own resampling (rasterio ``out_shape=``) is not used because it cannot be
applied to arrays already in memory (LMDB/npz inputs) and we want the three BigEarthNet formats to
produce identical tensors.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from eoreps.errors import ConfigError, DataError

RESAMPLING_MODES = ("bilinear", "nearest", "bicubic")


def gdal_reason(e: BaseException, path: Path) -> str:
    """A short, one-line reason from a rasterio/GDAL exception (its cause is often the informative part)."""
    parts = []
    for x in (e, e.__cause__):
        if x is not None:
            msg = " ".join(str(x).replace(str(path), path.name).split())
            if msg and "See previous exception" not in msg and msg not in parts:
                parts.append(msg)
    return "; ".join(parts)[:200] or type(e).__name__


def read_band(path: Path, expected_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read band 1 of a single-band GeoTIFF as float32, declared no-data -> NaN.

    Args:
        path: the ``.tif`` file.
        expected_shape: ``(H, W)`` the file must have, or ``None`` to accept any.

    Returns:
        ``(H, W)`` float32 array.

    Raises:
        DataError: missing file, unreadable/truncated/corrupt GeoTIFF, or wrong shape.
    """
    import rasterio
    from rasterio.errors import RasterioError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: band file is missing; re-download or re-extract the patch")
    try:
        with warnings.catch_warnings():
            # GDAL reports some corruptions only as warnings (NotGeoreferencedWarning etc. are harmless).
            warnings.simplefilter("ignore")
            with rasterio.open(path) as src:
                if src.count < 1:
                    raise DataError(f"{path}: GeoTIFF has no bands; re-download the patch")
                arr = src.read(1)
                nodata = src.nodata
    except DataError:
        raise
    except (RasterioError, OSError, ValueError, RuntimeError) as e:
        raise DataError(
            f"{path}: corrupt or truncated GeoTIFF ({gdal_reason(e, path)}); re-download the patch"
        ) from None
    if expected_shape is not None and tuple(arr.shape) != tuple(expected_shape):
        raise DataError(
            f"{path}: band shape {tuple(arr.shape)} does not match the expected {tuple(expected_shape)}; "
            "all bands of a patch must cover the same area"
        )
    out = arr.astype(np.float32, copy=False)
    if nodata is not None and not np.isnan(nodata):
        out = np.where(arr == nodata, np.float32(np.nan), out)
    return out


def check_mode(mode: str) -> str:
    """Validate a resampling mode name (one of :data:`RESAMPLING_MODES`)."""
    if mode not in RESAMPLING_MODES:
        raise ConfigError(f"unknown resampling '{mode}'; choose one of: {', '.join(RESAMPLING_MODES)}")
    return mode


def resample(band: np.ndarray, size: int, mode: str = "bilinear") -> np.ndarray:
    """Resample a square-ish ``(H, W)`` band to ``(size, size)``; see the module doc for the choice.

    NaN (no data) is propagated: a target pixel touched by a NaN source pixel becomes NaN for the
    interpolating modes.
    """
    if band.shape == (size, size):
        return band.astype(np.float32, copy=False)
    t = torch.from_numpy(np.ascontiguousarray(band, dtype=np.float32))[None, None]
    if mode == "nearest":
        out = F.interpolate(t, size=(size, size), mode="nearest")
    else:
        down = band.shape[0] > size or band.shape[1] > size
        out = F.interpolate(t, size=(size, size), mode=mode, align_corners=False, antialias=down)
    return out[0, 0].numpy()


def stack_on_grid(bands: Sequence[np.ndarray], size: int, mode: str = "bilinear") -> np.ndarray:
    """Bring bands of different resolutions to one ``(size, size)`` grid.

    Args:
        bands: ``C`` arrays of shape ``(H_c, W_c)``.
        size: target side in pixels.
        mode: ``"bilinear"`` (default), ``"nearest"`` or ``"bicubic"``.

    Returns:
        ``(C, size, size)`` float32.
    """
    check_mode(mode)
    return np.stack([resample(b, size, mode) for b in bands]).astype(np.float32, copy=False)
