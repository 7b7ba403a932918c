"""Per-band normalisation statistics (computed once, cached) and the :class:`Normalizer`.

Datasets return physical units (see :mod:`eoreps.data.modalities`); models see normalised inputs.
:func:`compute_stats` streams over a dataset once and merges per-sample moments with Chan et al.'s
parallel update (a batched Welford algorithm, float64), so memory stays constant and the result is
the exact mean and population standard deviation (``ddof=0``, as ``numpy.nanstd``) over all finite
values of each band. :func:`cached_stats` stores them as JSON (written atomically) keyed by a
fingerprint of the dataset, so later runs read them back without touching the data.

NaN handling (no-data pixels: clouds masked to NaN, S1 border zeros converted to NaN, missing
weather values, ...):

* statistics ignore non-finite values (NaN, +-inf) band by band; a band with no finite value at all
  is an error, a constant band gets ``std = 1`` (only its mean is removed) with a warning;
* :class:`Normalizer` computes ``(x - mean) / std`` per band, then replaces every non-finite value
  by ``fill`` (default 0, i.e. the band mean after normalisation) and adds a validity mask
  ``valid_<modality>``: ``True`` where *all* bands of that pixel were finite. Shapes: ``(H, W)``
  bool for an image sample ``(C, H, W)``, ``(B, H, W)`` for a batch ``(B, C, H, W)``; ``()`` /
  ``(B,)`` for vector modalities ``(C,)`` / ``(B, C)``. Models and losses may use it (e.g. to
  ignore filled pixels); :mod:`eoreps.transforms` moves it with the image (nearest neighbour);
* categorical modalities (``landcover``) are not normalised but one-hot encoded to
  ``num_classes`` float channels, ``(1, H, W)`` -> ``(K, H, W)``; pixels with NaN or an index outside
  ``[0, K)`` become all-zero and invalid. With ``one_hot=False`` they pass through unchanged.

Keys that are neither in the statistics nor registered modalities (``label``, ``mask``, ``id``, ...)
pass through untouched.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eoreps.data.modalities import MODALITIES, get_modality
from eoreps.digest import bytes_digest, digest
from eoreps.errors import ConfigError, DataError
from eoreps.io import read_json, write_json
from eoreps.progress import progress

__all__ = [
    "BandStats",
    "Normalizer",
    "cached_stats",
    "compute_stats",
    "dataset_fingerprint",
    "stats_from_arrays",
]

STATS_VERSION = 1


@dataclass
class BandStats:
    """Per-modality, per-band mean and standard deviation (physical units).

    Attributes:
        mean, std: modality -> per-band values (length ``C`` of that modality).
        count: modality -> number of finite values that went into each band's statistics.
        bands: modality -> band names where known (empty tuple otherwise).
        num_samples: samples read to compute them (0 for registry defaults).
        fingerprint: what they were computed on (see :func:`dataset_fingerprint`).
    """

    mean: dict[str, tuple[float, ...]]
    std: dict[str, tuple[float, ...]]
    count: dict[str, tuple[int, ...]] = field(default_factory=dict)
    bands: dict[str, tuple[str, ...]] = field(default_factory=dict)
    num_samples: int = 0
    fingerprint: dict[str, Any] = field(default_factory=dict)

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality names covered."""
        return tuple(self.mean)

    def tensors(self, modality: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, std)`` as float32 tensors of shape ``(C,)``."""
        if modality not in self.mean:
            raise ConfigError(
                f"no statistics for modality '{modality}' (have: {', '.join(self.mean) or 'none'}); "
                "compute them with compute_stats(..., modalities=[...]) "
            )
        return (torch.tensor(self.mean[modality], dtype=torch.float32),
                torch.tensor(self.std[modality], dtype=torch.float32))

    @classmethod
    def defaults(cls, modalities: Sequence[str]) -> BandStats:
        """The registry's published statistics (:mod:`eoreps.data.modalities`) for ``modalities``."""
        mods = [get_modality(m) for m in modalities]
        return cls(mean={m.name: m.mean for m in mods}, std={m.name: m.std for m in mods},
                   bands={m.name: m.bands for m in mods}, fingerprint={"source": "eoreps.data.modalities"})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (see :meth:`from_dict`)."""
        return {
            "version": STATS_VERSION, "num_samples": self.num_samples, "fingerprint": self.fingerprint,
            "modalities": {m: {"bands": list(self.bands.get(m, ())), "mean": list(self.mean[m]),
                               "std": list(self.std[m]), "count": list(self.count.get(m, ()))}
                           for m in self.mean},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "statistics") -> BandStats:
        """Inverse of :meth:`to_dict`; malformed input raises :class:`DataError` naming ``source``."""
        try:
            mods = d["modalities"]
            out = cls(mean={m: tuple(float(v) for v in s["mean"]) for m, s in mods.items()},
                      std={m: tuple(float(v) for v in s["std"]) for m, s in mods.items()},
                      count={m: tuple(int(v) for v in s.get("count", ())) for m, s in mods.items()},
                      bands={m: tuple(s.get("bands", ())) for m, s in mods.items()},
                      num_samples=int(d.get("num_samples", 0)), fingerprint=dict(d.get("fingerprint", {})))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise DataError(
                f"{source}: malformed band statistics ({e!r}); delete the file to recompute"
            ) from None
        for m in out.mean:
            if len(out.mean[m]) != len(out.std[m]) or any(not s > 0 for s in out.std[m]):
                raise DataError(
                    f"{source}: statistics of '{m}' need one positive std per band; delete the file"
                )
        return out


# ------------------------------------------------------------------------------------- streaming
class _Moments:
    """Running per-band count, mean and M2 (sum of squared deviations), float64, merged with Chan's update."""

    def __init__(self, channels: int) -> None:
        self.n = np.zeros(channels)
        self.mean = np.zeros(channels)
        self.m2 = np.zeros(channels)

    def update(self, x: np.ndarray) -> None:
        """Add ``x`` of shape ``(C, ...)``; non-finite values are skipped band by band."""
        x = x.reshape(x.shape[0], -1).astype(np.float64, copy=False)
        finite = np.isfinite(x)
        nb = finite.sum(1).astype(np.float64)
        xz = np.where(finite, x, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mb = np.where(nb > 0, xz.sum(1) / nb, 0.0)
        m2b = (np.where(finite, x - mb[:, None], 0.0) ** 2).sum(1)
        n = self.n + nb
        delta = mb - self.mean
        with np.errstate(invalid="ignore", divide="ignore"):
            w = np.where(n > 0, nb / n, 0.0)
        self.mean = self.mean + delta * w
        self.m2 = self.m2 + m2b + delta**2 * self.n * w
        self.n = n


def _sample_indices(n: int, max_samples: int | None, seed: int) -> np.ndarray:
    if max_samples is None or max_samples >= n:
        return np.arange(n)
    if max_samples < 1:
        raise ConfigError(f"max_samples must be >= 1, got {max_samples}")
    return np.sort(np.random.default_rng(seed).choice(n, size=max_samples, replace=False))


def _default_modalities(dataset: Any) -> list[str]:
    mods = list(getattr(dataset, "modalities", ()) or ())
    if not mods:
        raise ConfigError(
            f"{type(dataset).__name__} declares no modalities; pass modalities=[...] to compute_stats"
        )
    return [m for m in mods if not (m in MODALITIES and MODALITIES[m].categorical)]


def compute_stats(dataset: Any, modalities: Sequence[str] | None = None, max_samples: int | None = None,
                  seed: int = 0, num_workers: int = 0) -> BandStats:
    """Per-band mean / std over finite values, streaming over the dataset once.

    Args:
        dataset: map-style dataset of sample dicts (``<modality>``: ``(C, H, W)`` or ``(C,)``).
        modalities: keys to summarise; default: ``dataset.modalities`` without categorical ones.
        max_samples: read only this many samples, drawn at random with ``seed`` (all by default).
        seed: seed of that draw.
        num_workers: DataLoader workers reading samples (0: in this process).

    Returns:
        :class:`BandStats` with float64-accurate mean and population std per band.
    """
    mods = list(modalities) if modalities is not None else _default_modalities(dataset)
    idx = _sample_indices(len(dataset), max_samples, seed)
    if len(idx) == 0:
        raise DataError(f"{type(dataset).__name__} is empty; cannot compute band statistics")
    if num_workers > 0:
        from torch.utils.data import DataLoader, Subset

        samples: Any = DataLoader(Subset(dataset, idx.tolist()), batch_size=None, num_workers=num_workers)
    else:
        samples = (dataset[int(i)] for i in idx)
    moments: dict[str, _Moments] = {}
    for sample in progress(samples, desc="band statistics", total=len(idx), unit="sample"):
        for m in mods:
            if m not in sample:
                raise DataError(f"{type(dataset).__name__}: sample has no '{m}' (keys: {', '.join(sample)}); "
                                "drop it from modalities")
            x = sample[m]
            x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
            if x.ndim == 0:
                x = x[None]
            if m not in moments:
                moments[m] = _Moments(x.shape[0])
            elif x.shape[0] != len(moments[m].n):
                raise DataError(f"{type(dataset).__name__}: '{m}' has {x.shape[0]} bands in one sample and "
                                f"{len(moments[m].n)} in another; fix the dataset's band selection")
            moments[m].update(x)
    band_names = getattr(dataset, "band_names", {}) or {}
    mean, std, count = {}, {}, {}
    for m, mo in moments.items():
        mean[m], std[m], count[m] = _finalize(mo, m, type(dataset).__name__, len(idx))
    return BandStats(mean=mean, std=std, count=count,
                     bands={m: tuple(band_names.get(m, ())) for m in moments}, num_samples=len(idx))


def stats_from_arrays(arrays: Mapping[str, Any], modalities: Sequence[str] | None = None,
                      chunk: int = 256) -> BandStats:
    """:func:`compute_stats` for data already in memory, ``{modality: (N, C, H, W) or (N, C)}``.

    Same result (float64 moments over finite values, merged with Chan's update) without a Python
    step per sample: ``chunk`` samples at a time.
    """
    mods = list(modalities) if modalities is not None else [
        m for m in arrays if not (m in MODALITIES and MODALITIES[m].categorical)]
    mean, std, count = {}, {}, {}
    n_samples = 0
    for m in mods:
        if m not in arrays:
            raise DataError(
                f"no array for modality '{m}' (have: {', '.join(arrays)}); drop it from modalities"
            )
        x = arrays[m]
        x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        if x.ndim < 2:
            raise DataError(f"'{m}' has shape {x.shape}; expected (N, C, H, W) or (N, C)")
        mo = _Moments(x.shape[1])
        for i in range(0, len(x), chunk):
            mo.update(np.moveaxis(x[i:i + chunk], 1, 0))
        mean[m], std[m], count[m] = _finalize(mo, m, "arrays", len(x))
        n_samples = max(n_samples, len(x))
    return BandStats(mean=mean, std=std, count=count, num_samples=n_samples)


def _finalize(
    mo: _Moments, m: str, source: str, n: int
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[int, ...]]:
    """Mean, population std (constant bands -> 1, with a warning) and counts; error on empty bands."""
    if np.any(mo.n == 0):
        bad = [str(b) for b in np.flatnonzero(mo.n == 0)]
        raise DataError(f"{source}: band(s) {', '.join(bad)} of '{m}' have no finite value in "
                        f"{n} samples; drop them or check the data")
    s = np.sqrt(mo.m2 / mo.n)
    if np.any(s <= 1e-12):
        warnings.warn(
            f"constant band(s) {np.flatnonzero(s <= 1e-12).tolist()} of '{m}': std set to 1", stacklevel=3
        )
        s = np.where(s <= 1e-12, 1.0, s)
    return (tuple(float(v) for v in mo.mean), tuple(float(v) for v in s), tuple(int(v) for v in mo.n))


def _content_digest(dataset: Any, modalities: Sequence[str]) -> str:
    """SHA-1 of a few samples' values (first, middle, last), so two datasets of the same class and
    length but different content (another folder, seed or generator version) never share a cache entry."""
    n = len(dataset)
    samples = (dataset[i] for i in (sorted({0, n // 2, n - 1}) if n else ()))
    blobs = (np.ascontiguousarray(np.asarray(s[m], dtype=np.float32)).tobytes()
             for s in samples for m in modalities if m in s)
    return bytes_digest(blobs, None, "sha1")


def dataset_fingerprint(
    dataset: Any, modalities: Sequence[str], max_samples: int | None, seed: int
) -> dict[str, Any]:
    """What identifies a statistics computation: dataset class, length, bands, ``cache_key`` if any."""
    band_names = getattr(dataset, "band_names", {}) or {}
    return {
        "dataset": f"{type(dataset).__module__}.{type(dataset).__qualname__}",
        "cache_key": str(getattr(dataset, "cache_key", "")),
        "root": str(getattr(dataset, "root", "") or ""),
        "content": _content_digest(dataset, modalities),
        "length": len(dataset),
        "modalities": list(modalities),
        "bands": {m: list(band_names.get(m, ())) for m in modalities},
        "max_samples": max_samples,
        "seed": seed,
    }


def cached_stats(dataset: Any, cache: str | Path, modalities: Sequence[str] | None = None,
                 max_samples: int | None = None, seed: int = 0, num_workers: int = 0) -> BandStats:
    """:func:`compute_stats`, read from / written to a JSON cache.

    Args:
        cache: a ``.json`` file, or a directory in which the file is named by a hash of the fingerprint
            (so one folder can hold the statistics of many datasets).
        Other arguments as for :func:`compute_stats`. A dataset may define ``cache_key`` (e.g. its
        root folder and split) to tell apart datasets of the same class and length.

    The cache is used when its stored fingerprint equals the current one; otherwise (or when it is
    corrupt) the statistics are recomputed and the file replaced atomically. A dataset that carries its
    statistics (``precomputed_stats``, e.g. a packed archive's manifest) is not scanned at all.
    """
    mods = list(modalities) if modalities is not None else _default_modalities(dataset)
    pre = getattr(dataset, "precomputed_stats", None)
    if isinstance(pre, BandStats) and mods and all(m in pre.mean for m in mods):
        return BandStats({m: pre.mean[m] for m in mods}, {m: pre.std[m] for m in mods},
                         {m: pre.count[m] for m in mods if m in pre.count},
                         {m: pre.bands[m] for m in mods if m in pre.bands}, pre.num_samples, pre.fingerprint)
    fp = dataset_fingerprint(dataset, mods, max_samples, seed)
    path = Path(cache)
    if path.is_dir() or path.suffix.lower() != ".json":
        path = path / f"band_stats_{digest(fp, 16, 'sha1')}.json"
    if path.is_file():
        try:
            stored = BandStats.from_dict(read_json(path), source=str(path))
            if json.dumps(stored.fingerprint, sort_keys=True) == json.dumps(fp, sort_keys=True):
                return stored
            warnings.warn(f"{path}: statistics were computed on another dataset; recomputing", stacklevel=2)
        except DataError as e:
            warnings.warn(f"{e}; recomputing", stacklevel=2)
    stats = compute_stats(dataset, mods, max_samples=max_samples, seed=seed, num_workers=num_workers)
    stats.fingerprint = fp
    write_json(path, stats.to_dict())
    return stats


# ------------------------------------------------------------------------------------ normaliser
class Normalizer:
    """Normalise a sample or batch dict per band; fill non-finite values and flag them.

    Args:
        stats: statistics per modality; ``None`` uses the registry defaults for every registered
            modality found in the input.
        fill: value written where the input was non-finite, after normalisation (0 = band mean).
        fallback: use the registry defaults for registered modalities missing from ``stats``
            (otherwise such a key is an error, so nothing is silently left unnormalised).
        one_hot: one-hot encode categorical modalities (``landcover``) to ``num_classes`` channels.

    Input / output shapes (per key): image ``(C, H, W)`` or ``(B, C, H, W)``, vector ``(C,)`` or
    ``(B, C)``; output float32 of the same shape, plus ``valid_<modality>`` bool of shape
    ``(H, W)`` / ``(B, H, W)`` / ``()`` / ``(B,)``. The input dict is not modified.
    """

    def __init__(self, stats: BandStats | None = None, fill: float = 0.0, fallback: bool = False,
                 one_hot: bool = True) -> None:
        self.stats = stats
        self.fill = float(fill)
        self.fallback = fallback or stats is None
        self.one_hot = one_hot
        self._cache: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}

    def _params(self, key: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
        ck = (key, str(device))
        if ck not in self._cache:
            if self.stats is not None and key in self.stats.mean:
                mean, std = self.stats.tensors(key)
            elif key in MODALITIES:
                if not self.fallback:
                    raise ConfigError(
                        f"no statistics for modality '{key}'; add it to compute_stats(modalities=...) "
                        "or use Normalizer(..., fallback=True) for the published defaults"
                    )
                mean, std = BandStats.defaults([key]).tensors(key)
            else:
                return None
            self._cache[ck] = (mean.to(device), std.to(device))
        return self._cache[ck]

    def _categorical(self, key: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = int(MODALITIES[key].num_classes or 0)
        batched = x.ndim == 4
        if x.ndim not in (3, 4) or x.shape[-3] != 1:
            raise DataError(f"'{key}' must be (1, H, W) or (B, 1, H, W) class indices, got {tuple(x.shape)}")
        idx = x[:, 0] if batched else x[0]
        valid = torch.isfinite(idx) if idx.is_floating_point() else torch.ones_like(idx, dtype=torch.bool)
        idx = torch.where(valid, idx, torch.zeros_like(idx)).long()
        valid = valid & (idx >= 0) & (idx < k)
        onehot = torch.nn.functional.one_hot(idx.clamp(0, k - 1), k).to(torch.float32)
        onehot = onehot * valid[..., None]
        onehot = onehot.permute(0, 3, 1, 2) if batched else onehot.permute(2, 0, 1)
        return onehot.contiguous(), valid

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """Return a new dict with normalised modalities and ``valid_<modality>`` masks."""
        out = dict(sample)
        for key, value in sample.items():
            if not isinstance(value, (torch.Tensor, np.ndarray)) or key.startswith("valid_"):
                continue
            cat = key in MODALITIES and MODALITIES[key].categorical
            if cat and not (self.stats is not None and key in self.stats.mean):
                if self.one_hot:
                    out[key], out[f"valid_{key}"] = self._categorical(key, torch.as_tensor(value))
                continue
            x = torch.as_tensor(value)
            params = self._params(key, x.device)
            if params is None:
                continue
            mean, std = params
            if x.ndim not in (1, 2, 3, 4) or x.shape[1 if x.ndim in (2, 4) else 0] != len(mean):
                raise DataError(
                    f"'{key}' has shape {tuple(x.shape)} but its statistics have {len(mean)} bands; "
                    "expected (C,), (B, C), (C, H, W) or (B, C, H, W) with matching C"
                )
            cdim = 1 if x.ndim in (2, 4) else 0
            view = (-1,) + (1,) * (x.ndim - cdim - 1)
            y = (x.to(torch.float32) - mean.view(view)) / std.view(view)
            finite = torch.isfinite(y)
            out[key] = torch.where(finite, y, torch.full_like(y, self.fill))
            out[f"valid_{key}"] = finite.all(dim=cdim)
        return out
