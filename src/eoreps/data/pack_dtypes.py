"""Storage dtypes of a pack: each image modality in its product's native dtype when that is lossless.

Loaders hand every image over as float32 in physical units, but many products are stored as integers
(Sentinel-2 L2A digital numbers are uint16): a float32 pack of them is twice the bytes it needs to be.
:func:`narrow` stores a sample's image in the native dtype of its modality
(:attr:`eoreps.data.modalities.Modality.dtype`) when that is narrower than float32 and every value
survives the round trip exactly (integers in range, no NaN); otherwise it stays float32, sample by
sample: a Sentinel-2 patch with no-data (NaN) pixels, or one resampled bilinearly onto the 10 m grid,
keeps float32. LitData's ``numpy`` serializer stores each array's dtype with the array, so one split may
mix both; the reader (:func:`eoreps.data.datasets.packed.to_sample`) casts images back to float32.
Statistics are computed on the float values before narrowing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np


def native_dtype(modality: str) -> np.dtype | None:
    """The narrower-than-float32 integer dtype ``modality``'s product is stored in, or ``None``."""
    from eoreps.data.modalities import MODALITIES

    mod = MODALITIES.get(modality)
    if mod is None:
        return None
    dtype = np.dtype(mod.dtype)
    return dtype if dtype.kind in "ui" and dtype.itemsize < 4 else None


def narrow(item: dict[str, Any], modalities: Sequence[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """``item`` with each image (``ndim >= 2``) of ``modalities`` in its native dtype where lossless.

    Returns the item to store and, per modality found, the dtype it is stored in.
    """
    out, stored = dict(item), {}
    for mod in modalities:
        value = item.get(mod)
        if not isinstance(value, np.ndarray) or value.ndim < 2:
            continue
        target = native_dtype(mod)
        if target is not None and value.dtype.kind == "f":
            with np.errstate(invalid="ignore", over="ignore"):
                cast = value.astype(target)
            if np.array_equal(cast, value):  # NaN, fractions and out-of-range values all differ
                out[mod] = value = cast
        stored[mod] = str(value.dtype)
    return out, stored


def count(counts: dict[str, dict[str, int]], stored: Mapping[str, str]) -> None:
    """Add one sample's ``stored`` dtypes to ``counts`` (modality -> dtype -> samples), in place."""
    for mod, dtype in stored.items():
        per = counts.setdefault(mod, {})
        per[dtype] = per.get(dtype, 0) + 1


def merge(parts: Iterable[Mapping[str, Mapping[str, int]]]) -> dict[str, dict[str, int]]:
    """The sum of several parts' ``counts``."""
    total: dict[str, dict[str, int]] = {}
    for part in parts:
        for mod, per in part.items():
            dst = total.setdefault(mod, {})
            for dtype, n in per.items():
                dst[dtype] = dst.get(dtype, 0) + int(n)
    return total


def describe(per: Mapping[str, int] | None, fallback: str) -> str:
    """The manifest's ``dtype`` of a modality: its one storage dtype, ``"mixed"`` when samples differ,
    ``fallback`` (the loader's dtype) when nothing was counted (a pack resumed from an older state)."""
    kinds = [d for d, n in (per or {}).items() if n]
    if not kinds:
        return fallback
    return kinds[0] if len(kinds) == 1 else "mixed"
