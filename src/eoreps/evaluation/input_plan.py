"""How the evaluation data reaches a loaded backbone: band mapping, unit check and normalisation.

For each backbone group (:mod:`eoreps.evaluation.encoders`), :func:`plan_inputs` compares the data with
the backbone's card, modality by modality:

* **bands**: when both name their bands and the names differ, :func:`eoreps.models.bands.map_bands`
  pairs them (extra data bands dropped, missing ones filled by ``band_fill``); the group's
  :class:`~eoreps.models.bands.BandSelect` then reorders the normalised inputs;
* **units**: the weights' units (from the card's normalisation) against the data's (from its training
  statistics, or ``data_units``) by :func:`eoreps.models.units.resolve_units`: refused with one line, or
  converted by a scale folded into the statistics (``DN = 10,000 x reflectance``);
* **statistics**: the card's normalisation, re-ordered to the data's bands and divided by the scale, so
  that ``(x_data - mean) / std`` equals the weights' ``(x_weights - mean_w) / std_w``.

The outcome says all of it in one line per modality (``report``), which the results record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from eoreps.data.modalities import MODALITIES
from eoreps.errors import DataError
from eoreps.evaluation.data import EvalData
from eoreps.models.bands import (
    BandMap,
    BandSelect,
    band_wavelength,
    canonical_band,
    concat_maps,
    identity_map,
    map_bands,
)
from eoreps.models.card import BackboneCard
from eoreps.models.units import UnitCheck, guess_units, is_sar, resolve_units


@dataclass
class InputPlan:
    """What :func:`plan_inputs` decided for one backbone group.

    Attributes:
        select: the band mapping module (``None``: the data's bands go in as they are).
        channels: channels the backbone receives (after the mapping).
        mean, std: modality -> per-band normalisation in the data's band order and units (from the card;
            modalities without card statistics are absent).
        report: one line per modality
            (``s2: 12 data bands -> 13 weights bands; filled B10 (mean); units dn``).
        changed: True when bands were mapped or units converted (part of the feature-cache identity).
    """

    select: BandSelect | None
    channels: int
    mean: dict[str, tuple[float, ...]] = field(default_factory=dict)
    std: dict[str, tuple[float, ...]] = field(default_factory=dict)
    report: list[str] = field(default_factory=list)
    changed: bool = False


def _band_map(card: BackboneCard, m: str, data: EvalData, fill: str, where: str) -> BandMap | None:
    card_bands = (card.band_names or {}).get(m)
    data_bands = data.band_names.get(m)
    if not card_bands or not data_bands:
        return None
    if [canonical_band(b) for b in card_bands] == [canonical_band(b) for b in data_bands]:
        return None
    return map_bands(data_bands, card_bands, fill, where=f"{where} ({m})")


def _units(card: BackboneCard, m: str, norm: dict, data: EvalData, data_units: str | None,
           where: str) -> UnitCheck | None:
    """The unit check of an optical (Sentinel-2 bands) or SAR modality; ``None`` for others (DEM, weather:
    their magnitudes say nothing about DN or dB)."""
    bands = (card.band_names or {}).get(m) or data.band_names.get(m)
    sar = is_sar(bands)
    if not sar and not (bands and all(band_wavelength(b) is not None for b in bands)):
        return None
    declared = (card.extra.get("external") or {}).get("units") if isinstance(card.extra, dict) else None
    wu = declared if declared and declared != "unknown" else guess_units(norm["mean"], norm["std"], sar)
    if data_units:
        du = data_units
    else:
        st = data.train_stats()
        du = guess_units(st.mean[m], st.std[m], sar) if m in st.mean else "unknown"
    return resolve_units(wu, du, where, m)


def plan_inputs(card: BackboneCard, mods: Sequence[str], data: EvalData, where: str,
                band_fill: str | None = None, data_units: str | None = None) -> InputPlan:
    """Band mapping, unit check and statistics for a backbone reading ``mods`` (see the module docstring).

    Args:
        card: the backbone's card.
        mods: the modalities it reads, stacked in this order.
        data: the evaluation data.
        where: the backbone file or method, named in errors.
        band_fill: rule for missing bands (default ``mean``).
        data_units: the data's units when the guess from its statistics is wrong.

    Raises:
        DataError: no band in common, a unit mismatch without a known conversion, or card statistics whose
            length fits neither the data nor a band mapping.
    """
    plan = InputPlan(None, 0)
    maps: list[BandMap] = []
    for m in mods:
        n = data.channels(m)
        bmap = _band_map(card, m, data, band_fill or "mean", where)
        maps.append(bmap or identity_map(data.band_names.get(m) or [f"{m}[{i}]" for i in range(n)]))
        plan.channels += len(bmap.weights_bands) if bmap else n
        norm = (card.normalization or {}).get(m)
        categorical = m in MODALITIES and MODALITIES[m].categorical
        check = _units(card, m, norm, data, data_units, where) if norm and not categorical else None
        if norm:
            mean, std = _data_order(norm, bmap, data, m, n, where)
            scale = check.scale if check else 1.0
            plan.mean[m] = tuple(v / scale if v is not None else d for v, d in mean)
            plan.std[m] = tuple(v / scale if v is not None else d for v, d in std)
        units = f"units {check.note}" if check else "units unchecked"
        plan.report.append(f"{m}: {bmap.describe() if bmap else f'{n} bands'}; {units}")
        plan.changed |= bmap is not None or (check is not None and check.scale != 1.0)
    if any(not mp.identity for mp in maps):
        plan.select = BandSelect(concat_maps(maps))
    return plan


def _data_order(norm: dict, bmap: BandMap | None, data: EvalData, m: str, n: int,
                where: str) -> tuple[list[tuple[float | None, float]], list[tuple[float | None, float]]]:
    """The card's ``(mean, std)`` per data band as ``(card value or None, data's own value)`` pairs: data
    bands the weights do not read (dropped) keep the data's statistics."""
    w_mean, w_std = [float(v) for v in norm["mean"]], [float(v) for v in norm["std"]]
    if bmap is None:
        if len(w_mean) != n:
            raise DataError(f"{where}: the card normalises '{m}' with {len(w_mean)} bands, the data has {n}; "
                            "check the band selection (or give both band names to map them)")
        return [(v, v) for v in w_mean], [(v, v) for v in w_std]
    if len(w_mean) != len(bmap.weights_bands):
        raise DataError(f"{where}: the card normalises '{m}' with {len(w_mean)} values for "
                        f"{len(bmap.weights_bands)} bands; re-import the backbone")
    own = data.train_stats()
    pos = {b: i for i, b in enumerate(bmap.weights_bands)}
    mean, std = [], []
    for j, b in enumerate(bmap.data_bands):
        i = pos.get(b)
        mean.append((None if i is None else w_mean[i], float(own.mean[m][j])))
        std.append((None if i is None else w_std[i], float(own.std[m][j])))
    return mean, std


__all__ = ["InputPlan", "plan_inputs"]
