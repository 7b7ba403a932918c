"""Feed a backbone the bands it was trained on: match the data's bands to the weights' bands by name.

Published weights name their bands in many spellings (torchgeo: ``B1 .. B8a .. B12``, ESA: ``B01 .. B8A``,
SAR: ``VV``/``vv``); :func:`canonical_band` brings them to eoreps' spelling (``B01`` .. ``B12``, ``B8A``,
``VV``, ``VH``) and :func:`map_bands` pairs each band the weights expect with the data band of the same
name. What cannot be paired is handled by a documented rule and reported (:class:`BandMap`):

* **extra data bands** (the data has them, the weights do not): dropped;
* **missing bands** (the weights expect them, the data lacks them), ``fill``:

  - ``"mean"`` (default): zeros after normalisation, i.e. the band sits at the weights' mean (the
    neutral input: the first layer then sees no signal from it);
  - ``"nearest"``: a copy of the normalised data band nearest in wavelength (``B09`` <- ``B8A``); bands
    without a wavelength (SAR) fall back to ``"mean"``.

  A learned alternative is the adapter protocol's spectral adapter
  (:mod:`eoreps.evaluation.protocols.adapter`), which replaces the mapping with trained weights.

:class:`BandSelect` applies a map to normalised inputs ``(B, C_data, H, W) -> (B, C_weights, H, W)``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from eoreps.data.modalities import MODALITIES
from eoreps.errors import ConfigError, DataError

FILL_RULES = ("mean", "nearest")
_S2 = re.compile(r"^(?:S2[_:.-]?)?B0?(\d{1,2})(A?)$")


def canonical_band(name: str) -> str:
    """eoreps' spelling of a band name: ``B1``/``b01``/``S2_B1`` -> ``B01``, ``B8a`` -> ``B8A``,
    ``vv`` -> ``VV``; other names are upper-cased (``SR_B4``)."""
    s = str(name).strip().upper()
    m = _S2.match(s)
    if m:
        num, a = int(m.group(1)), m.group(2)
        return f"B{num}A" if a else f"B{num:02d}"
    return s


def _wavelengths() -> dict[str, float]:
    out: dict[str, float] = {}
    for mod in MODALITIES.values():
        for b, w in zip(mod.bands, mod.wavelengths_nm, strict=True):
            if w is not None:
                out[canonical_band(b)] = float(w)
    return out


def band_wavelength(name: str) -> float | None:
    """Central wavelength (nm) of a known band (Sentinel-2), else ``None``."""
    return _wavelengths().get(canonical_band(name))


@dataclass
class BandMap:
    """How the data's bands feed the weights' bands.

    Attributes:
        data_bands, weights_bands: canonical band names, in storage order.
        sources: per weights band, the index of the data band it reads (``None``: filled with 0, the mean).
        fill: the rule for missing bands (:data:`FILL_RULES`).
        filled: weights bands the data lacks, as ``{band: "mean" | "copy of <data band>"}``.
        dropped: data bands the weights do not read.
    """

    data_bands: list[str]
    weights_bands: list[str]
    sources: list[int | None]
    fill: str
    filled: dict[str, str]
    dropped: list[str]

    @property
    def identity(self) -> bool:
        """True when the data already is in the weights' band order."""
        return self.sources == list(range(len(self.data_bands)))

    def to_dict(self) -> dict[str, Any]:
        """JSON form (card extras, results)."""
        return {"data_bands": self.data_bands, "weights_bands": self.weights_bands, "sources": self.sources,
                "fill": self.fill, "filled": self.filled, "dropped": self.dropped}

    def describe(self) -> str:
        """One line: ``12 data bands -> 13 weights bands; filled B10 (mean); dropped none``."""
        if self.identity:
            return f"{len(self.data_bands)} bands as the weights expect"
        parts = [f"{len(self.data_bands)} data bands -> {len(self.weights_bands)} weights bands"]
        if self.filled:
            parts.append("filled " + ", ".join(f"{b} ({how})" for b, how in self.filled.items()))
        if self.dropped:
            parts.append("dropped " + ", ".join(self.dropped))
        if not self.filled and not self.dropped:
            parts.append("reordered")
        return "; ".join(parts)


def map_bands(data_bands: Sequence[str], weights_bands: Sequence[str], fill: str = "mean",
              where: str = "band mapping") -> BandMap:
    """Pair each of ``weights_bands`` with the data band of the same (canonical) name.

    Args:
        data_bands: the data's band names, in storage order.
        weights_bands: the bands the weights were trained on, in their order.
        fill: rule for missing bands, ``"mean"`` or ``"nearest"`` (see the module docstring).
        where: what is mapped (a file or method name), for the error messages.

    Raises:
        ConfigError: an unknown ``fill``.
        DataError: no band in common (wrong modality or sensor).
    """
    if fill not in FILL_RULES:
        raise ConfigError(f"band_fill={fill!r} is not a fill rule; choose one of {', '.join(FILL_RULES)}")
    data = [canonical_band(b) for b in data_bands]
    weights = [canonical_band(b) for b in weights_bands]
    index = {b: i for i, b in enumerate(data)}
    if not set(index) & set(weights):
        raise DataError(f"{where}: the data's bands ({', '.join(data)}) share none with the weights' bands "
                        f"({', '.join(weights)}); load the modality the weights were trained on")
    sources: list[int | None] = []
    filled: dict[str, str] = {}
    for b in weights:
        if b in index:
            sources.append(index[b])
            continue
        src = _nearest(b, data) if fill == "nearest" else None
        sources.append(None if src is None else index[src])
        filled[b] = "mean" if src is None else f"copy of {src}"
    dropped = [b for b in data if b not in weights]
    return BandMap(data, weights, sources, fill, filled, dropped)


def _nearest(band: str, data: Sequence[str]) -> str | None:
    """The data band nearest in wavelength to ``band`` (``None`` when either has no wavelength)."""
    w = band_wavelength(band)
    if w is None:
        return None
    have = [(abs(wb - w), b) for b in data if (wb := band_wavelength(b)) is not None]
    return min(have)[1] if have else None


def identity_map(bands: Sequence[str]) -> BandMap:
    """The map of data already in the weights' order (``bands`` as given)."""
    names = [canonical_band(b) for b in bands]
    return BandMap(names, list(names), list(range(len(names))), "mean", {}, [])


def concat_maps(maps: Sequence[BandMap]) -> BandMap:
    """One map for modalities stacked along channels (each map's sources offset by the bands before it)."""
    data: list[str] = []
    weights: list[str] = []
    sources: list[int | None] = []
    filled: dict[str, str] = {}
    dropped: list[str] = []
    for m in maps:
        sources += [None if s is None else s + len(data) for s in m.sources]
        data += m.data_bands
        weights += m.weights_bands
        filled.update(m.filled)
        dropped += m.dropped
    return BandMap(data, weights, sources, maps[0].fill if maps else "mean", filled, dropped)


class BandSelect(nn.Module):
    """Apply a :class:`BandMap` to normalised inputs: ``(B, C_data, ...) -> (B, C_weights, ...)``.

    Filled bands are 0 (the weights' mean after normalisation) or a copy of their source band.
    """

    def __init__(self, band_map: BandMap) -> None:
        super().__init__()
        self.band_map = band_map
        n = len(band_map.data_bands)
        idx = [n if s is None else s for s in band_map.sources]  # index n = an appended zero channel
        self.register_buffer("index", torch.tensor(idx, dtype=torch.long), persistent=False)
        self.pad = any(s is None for s in band_map.sources)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Select, reorder and fill the channels (dim 1)."""
        if x.shape[1] != len(self.band_map.data_bands):
            raise DataError(f"band mapping built for {len(self.band_map.data_bands)} data bands got "
                            f"{x.shape[1]}; rebuild it for this data")
        if self.pad:
            x = torch.cat([x, x.new_zeros((x.shape[0], 1, *x.shape[2:]))], dim=1)
        return x.index_select(1, self.index)


__all__ = ["FILL_RULES", "BandMap", "BandSelect", "band_wavelength", "canonical_band", "concat_maps",
           "identity_map", "map_bands"]
