"""``eoreps data inspect``: recognise a dataset and summarise it (counts, bands, statistics, classes).

Reading every sample is also an integrity check: a missing, truncated or corrupt file, or bands of
the wrong shape, stop the inspection with a one-line :class:`~eoreps.errors.DataError` naming the
file. With ``max_samples`` only that many samples (evenly spaced over the dataset) are read, so only
those are checked.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eoreps.data.formats import detect_format, open_dataset
from eoreps.progress import progress

_TASKS = {"single": "single-label", "multi": "multi-label", "regression": "regression", "none": "unlabelled"}


@dataclass
class Inspection:
    """What :func:`inspect_path` found.

    Attributes:
        path: the inspected path.
        format: format name (see :mod:`eoreps.data.formats`).
        num_samples: samples the dataset yields (default options).
        num_excluded: samples present but left out by default (reBEN snow/cloud/shadow patches).
        samples_read: samples actually read for the statistics and checks.
        modalities: image/vector modality keys of a sample.
        band_names: modality -> band names.
        shapes: modality -> per-sample tensor shape (of the first sample read).
        band_stats: modality -> band -> ``{"mean", "std", "min", "max"}`` over valid (non-NaN) values.
        class_frequencies: class name -> number of samples carrying it (all samples, from labels).
        nodata_fraction: modality -> fraction of non-finite (NaN = no-data) values read.
        task: ``"single"``, ``"multi"``, ``"regression"`` or ``"none"``.
        synthetic: True for generated data (SimEO).
        nodata_samples: ``[id, modality]`` of every sample read whose modality is entirely no-data.
        skipped_nodata: samples left out by ``skip_nodata=True`` (GeoTIFF folder).
        mask_classes: mask class name -> share of all mask pixels (datasets with their own mask classes).
        mask_codes: mask class name -> raw code in the files.
        mask_ignored_share: share of mask pixels ignored (no-data, ignore code, codes not in the class map).
        split: how the dataset's splits are defined (GeoTIFF folder: column or automatic, counts).
    """

    path: str
    format: str
    num_samples: int
    num_excluded: int = 0
    samples_read: int = 0
    modalities: list[str] = field(default_factory=list)
    band_names: dict[str, list[str]] = field(default_factory=dict)
    shapes: dict[str, list[int]] = field(default_factory=dict)
    band_stats: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    class_frequencies: dict[str, int] = field(default_factory=dict)
    nodata_fraction: dict[str, float] = field(default_factory=dict)
    task: str = "none"
    synthetic: bool = False
    nodata_samples: list[list[str]] = field(default_factory=list)
    skipped_nodata: int = 0
    mask_classes: dict[str, float] = field(default_factory=dict)
    mask_codes: dict[str, int] = field(default_factory=dict)
    mask_ignored_share: float = 0.0
    split: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        return asdict(self)

    def to_text(self) -> str:
        """Human-readable multi-line summary."""
        lines = [f"path:      {self.path}", f"format:    {self.format}"]
        if self.synthetic:
            lines.append("data:      SYNTHETIC (generated, not real observations)")
        count = f"samples:   {self.num_samples}"
        if self.num_excluded:
            count += (f" (+{self.num_excluded} more flagged for snow/cloud/shadow, excluded by default;"
                      " add them with include_snow_cloud=True)")
        lines.append(count)
        lines.append(f"checked:   {self.samples_read} of {self.num_samples} samples read")
        k = len(self.class_frequencies)
        lines.append(f"task:      {_TASKS.get(self.task, self.task)}" + (f", {k} classes" if k else ""))
        for m in self.modalities:
            shape = " x ".join(map(str, self.shapes.get(m, [])))
            nd = self.nodata_fraction.get(m, 0.0)
            lines.append(
                f"modality {m}: {len(self.band_names.get(m, []))} bands, shape {shape}, no-data "
                f"{100 * nd:.2f}%"
            )
            lines.append(f"  {'band':<14}{'mean':>12}{'std':>12}{'min':>12}{'max':>12}")
            for b in self.band_names.get(m, []):
                st = self.band_stats.get(m, {}).get(b)
                if st is None:
                    continue
                lines.append(f"  {b:<14}" + "".join(f"{st[s]:>12.4g}" for s in ("mean", "std", "min", "max")))
        if self.class_frequencies:
            unit = "samples with the class" if self.task == "multi" else "samples"
            lines.append(f"class frequencies ({unit}):")
            width = min(60, max(len(c) for c in self.class_frequencies))
            for c, n in self.class_frequencies.items():
                lines.append(f"  {c[:width]:<{width}}  {n:>7}")
            absent = [c for c, n in self.class_frequencies.items() if n == 0]
            if absent:
                lines.append(f"  ({len(absent)} of {k} classes never occur)")
        lines.extend(self._extra_lines())
        return "\n".join(lines)

    def _extra_lines(self) -> list[str]:
        """Mask classes, no-data samples and splits (GeoTIFF folders)."""
        lines = []
        if self.mask_classes:
            lines.append(f"mask classes ({len(self.mask_classes)}; share of mask pixels, "
                         f"ignored {100 * self.mask_ignored_share:.2f}%):")
            for c, share in self.mask_classes.items():
                lines.append(f"  {c:<20} code {self.mask_codes.get(c, '?'):>6}  {100 * share:7.2f}%")
        if self.split:
            counts = ", ".join(f"{k} {v}" for k, v in self.split.get("counts", {}).items())
            extra = (
                f", ratios {self.split['ratios']}, seed {self.split['seed']}"
                if "ratios" in self.split
                else ""
            )
            lines.append(f"splits:    {self.split.get('source')}{extra}: {counts}")
        if self.skipped_nodata:
            lines.append(f"skipped:   {self.skipped_nodata} samples entirely no-data (skip_nodata)")
        if self.nodata_samples:
            lines.append(
                f"entirely no-data ({len(self.nodata_samples)}; training refuses them unless --skip-nodata):"
            )
            lines.extend(f"  {sid}  {m}" for sid, m in self.nodata_samples)
        return lines


class _BandAccumulator:
    """Running per-band count/sum/sum of squares/min/max over valid values, and the NaN count."""

    def __init__(self, channels: int) -> None:
        self.n = np.zeros(channels, np.float64)
        self.s = np.zeros(channels, np.float64)
        self.ss = np.zeros(channels, np.float64)
        self.lo = np.full(channels, np.inf)
        self.hi = np.full(channels, -np.inf)
        self.nan = 0
        self.total = 0

    def add(self, x: torch.Tensor) -> None:
        """Add one sample, ``(C, H, W)`` or ``(C,)``."""
        # float64 sums are exact enough here (reflectance x 1e4, dB); min/max/no-data are tracked too,
        # which eoreps.data.stats (mean/std only) does not need.
        a = x.detach().cpu().numpy().reshape(x.shape[0], -1).astype(np.float64)
        nan = ~np.isfinite(a)  # no-data: NaN (and inf), as eoreps.data.stats treats them
        n_nan = int(nan.sum())
        self.nan += n_nan
        self.total += a.size
        if n_nan:  # slow path only when there is no-data
            self.n += (~nan).sum(1)
            z = np.where(nan, 0.0, a)
            lo = np.where(nan, np.inf, a).min(1)
            hi = np.where(nan, -np.inf, a).max(1)
        else:
            self.n += a.shape[1]
            z, lo, hi = a, a.min(1), a.max(1)
        self.s += z.sum(1)
        self.ss += np.einsum("ij,ij->i", z, z)
        self.lo = np.minimum(self.lo, lo)
        self.hi = np.maximum(self.hi, hi)

    def stats(self, names: list[str]) -> dict[str, dict[str, float]]:
        out = {}
        for j, b in enumerate(names):
            n = self.n[j]
            mean = self.s[j] / n if n else math.nan
            var = max(self.ss[j] / n - mean * mean, 0.0) if n else math.nan
            out[b] = {
                "mean": float(mean),
                "std": float(math.sqrt(var)) if n else math.nan,
                "min": float(self.lo[j]) if n else math.nan,
                "max": float(self.hi[j]) if n else math.nan,
            }
        return out


def _class_frequencies(ds) -> dict[str, int]:
    if ds.task not in ("single", "multi") or not ds.classes:
        return {}
    labels = ds.label_matrix()
    if ds.task == "single":
        counts = torch.bincount(labels.long(), minlength=len(ds.classes))
    else:
        counts = labels.sum(0)
    return {c: int(n) for c, n in zip(ds.classes, counts.tolist(), strict=False)}


def inspect_path(path: str | Path, max_samples: int | None = None, **open_kw: Any) -> Inspection:
    """Recognise the dataset at ``path``, read (up to ``max_samples``) samples and summarise them.

    Args:
        path: dataset folder or file (any format of :func:`eoreps.data.formats.detect_format`).
        max_samples: read at most this many samples, evenly spaced (``None``: all).
        **open_kw: options for :func:`eoreps.data.formats.open_dataset` (e.g. ``include_snow_cloud``).

    Raises:
        DataError: unknown format, or a missing/corrupt/mis-shaped file (one line naming it).
    """
    path = Path(path)
    fmt = detect_format(path)
    ds = open_dataset(path, **open_kw)
    if hasattr(ds, "strict_nodata"):
        ds.strict_nodata = False  # list samples that are entirely no-data instead of stopping at the first
    n = len(ds)
    k = n if max_samples is None else max(0, min(n, int(max_samples)))
    idx = np.unique(np.linspace(0, n - 1, k).round().astype(int)) if k else np.zeros(0, int)
    acc: dict[str, _BandAccumulator] = {}
    shapes: dict[str, list[int]] = {}
    mods = list(ds.modalities)
    empty: list[list[str]] = []
    for i in progress(idx.tolist(), desc=f"inspect {path.name}", unit="sample"):
        sample = ds[i]
        for m in mods:
            x = sample.get(m)
            if x is None:
                continue
            x = torch.as_tensor(x)
            if x.numel() and x.is_floating_point() and not torch.isfinite(x).any():
                empty.append([str(sample.get("id", i)), m])
            if m not in acc:
                acc[m] = _BandAccumulator(x.shape[0])
                shapes[m] = list(x.shape)
            acc[m].add(x)
    band_names = {m: list(ds.band_names.get(m, ())) for m in mods}
    return Inspection(
        path=str(path),
        format=fmt,
        num_samples=n,
        num_excluded=int(getattr(ds, "num_excluded", 0)),
        samples_read=len(idx),
        modalities=mods,
        band_names=band_names,
        shapes=shapes,
        band_stats={m: a.stats(band_names[m]) for m, a in acc.items()},
        class_frequencies=_class_frequencies(ds),
        nodata_fraction={m: (a.nan / a.total if a.total else 0.0) for m, a in acc.items()},
        task=ds.task,
        synthetic=bool(getattr(ds, "synthetic", False)),
        nodata_samples=empty,
        skipped_nodata=int(getattr(ds, "num_skipped_nodata", 0)),
        split=dict(getattr(ds, "split_info", {}) or {}),
        **_mask_fields(ds),
    )


def _mask_fields(ds: Any) -> dict[str, Any]:
    report = ds.mask_pixel_report() if hasattr(ds, "mask_pixel_report") else {}
    if not report:
        return {}
    return {
        "mask_classes": report["shares"],
        "mask_codes": report["codes"],
        "mask_ignored_share": report["ignored_share"],
    }
