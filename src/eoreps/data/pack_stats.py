"""Streaming, NaN-aware per-band statistics (count, mean, M2, min, max, NaN count) for ``eoreps data pack``.

Each sample's bands are reduced on their own (NumPy ``nan*``), then merged into the running totals with
Chan et al.'s parallel update of Welford's algorithm::

    delta = mean_b - mean_a;  n = n_a + n_b
    mean  = mean_a + delta * n_b / n
    M2    = M2_a + M2_b + delta**2 * n_a * n_b / n

so the result equals ``numpy.nanmean`` / ``numpy.nanstd`` over all samples at once (tested) while memory
stays one vector per band, and two partial results (packed parts, resumed runs) merge exactly the same
way. Written here because the field libraries offer no NaN-aware, mergeable per-band accumulator over
a stream (``torchmetrics.MeanMetric`` has no M2/min/max/NaN count).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

FIELDS = ("count", "mean", "m2", "min", "max", "nan")


@dataclass
class BandStats:
    """Running statistics of ``C`` bands (all float64 vectors of length ``C``)."""

    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    min: np.ndarray
    max: np.ndarray
    nan: np.ndarray

    @classmethod
    def empty(cls, bands: int) -> BandStats:
        """No values seen yet (min/max are +inf/-inf, reported as NaN)."""
        z = np.zeros(bands, dtype=np.float64)
        return cls(z.copy(), z.copy(), z.copy(), np.full(bands, np.inf), np.full(bands, -np.inf), z.copy())

    @classmethod
    def of(cls, x: np.ndarray) -> BandStats:
        """Statistics of one array ``(C, ...)`` (band first); NaN values are counted, not used."""
        v = np.asarray(x, dtype=np.float64).reshape(x.shape[0], -1)
        finite = ~np.isnan(v)
        count = finite.sum(axis=1).astype(np.float64)
        with warnings.catch_warnings():  # an all-NaN band: NaN mean, handled by the count below
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.where(count > 0, np.nanmean(v, axis=1), 0.0)
            m2 = np.where(count > 0, np.nansum((v - mean[:, None]) ** 2, axis=1), 0.0)
            lo = np.where(count > 0, np.nanmin(np.where(finite, v, np.inf), axis=1), np.inf)
            hi = np.where(count > 0, np.nanmax(np.where(finite, v, -np.inf), axis=1), -np.inf)
        return cls(count, mean, m2, lo, hi, (~finite).sum(axis=1).astype(np.float64))

    def merge(self, other: BandStats) -> BandStats:
        """Chan's update: the statistics of both streams together (neither is changed)."""
        n = self.count + other.count
        safe = np.where(n > 0, n, 1.0)
        delta = other.mean - self.mean
        mean = np.where(n > 0, self.mean + delta * other.count / safe, 0.0)
        m2 = self.m2 + other.m2 + delta**2 * self.count * other.count / safe
        return BandStats(n, mean, m2, np.minimum(self.min, other.min), np.maximum(self.max, other.max),
                         self.nan + other.nan)

    def to_dict(self) -> dict[str, list[float]]:
        """JSON form: the raw accumulators (``count, mean, m2, min, max, nan``) for merging."""
        return {k: [float(v) for v in getattr(self, k)] for k in FIELDS}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BandStats:
        """Inverse of :meth:`to_dict`."""
        return cls(*(np.asarray(d[k], dtype=np.float64) for k in FIELDS))

    def summary(self) -> dict[str, list[float | None]]:
        """The manifest's statistics: ``mean``, ``std`` (population, as ``numpy.nanstd``), ``min``, ``max``,
        ``count`` (valid values), ``nan_fraction``; a band without valid values gets ``None``."""
        valid = self.count > 0
        std = np.sqrt(self.m2 / np.where(valid, self.count, 1.0))
        total = self.count + self.nan

        def col(a: np.ndarray) -> list[float | None]:
            return [float(v) if ok else None for v, ok in zip(a, valid, strict=True)]

        return {"mean": col(self.mean), "std": col(std), "min": col(self.min), "max": col(self.max),
                "count": [int(c) for c in self.count],
                "nan_fraction": [float(n / t) if t else 0.0 for n, t in zip(self.nan, total, strict=True)]}


def merge_all(parts: list[dict[str, dict[str, Any]]]) -> dict[str, BandStats]:
    """Merge per-part statistics (modality -> :meth:`BandStats.to_dict`) into one per modality."""
    out: dict[str, BandStats] = {}
    for part in parts:
        for mod, d in part.items():
            s = BandStats.from_dict(d)
            out[mod] = out[mod].merge(s) if mod in out else s
    return out
