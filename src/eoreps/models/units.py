"""Input units: catch data fed to weights in the wrong units (DN vs reflectance vs dB) before it runs.

Weights are trained on inputs in some unit and normalised with statistics in that unit; feeding them data
in another unit gives features that are silently wrong (reflectance 0..1 into a network that divides by
10,000 sees zeros). :func:`guess_units` reads the unit from per-band means / standard deviations, which
both sides have: the weights' normalisation (its card) and the data's statistics (training split):

============  ====================================================================================
``dn``        digital numbers, e.g. Sentinel-2 reflectance x 10,000 (mean + std above 50, not ``byte``)
``byte``      8-bit images in 0..255 (mean + std in (100, 300], e.g. ``Normalize(0, 255)``: Satlas RGB,
              SSL4EO-L)
``reflectance``  reflectance in 0..1 (means in [0, 2])
``db``        SAR backscatter in decibels (means below -1, typically -30..5)
``linear``    SAR backscatter as linear power (SAR bands with means in [0, 2])
``unknown``   none of the above, or data already standardised (means ~0, stds ~1): no check
============  ====================================================================================

:func:`resolve_units` compares the two: equal (or unknown) units pass; ``dn`` <-> ``reflectance`` has a
known rule (Sentinel-2's quantification value, ``DN = 10,000 x reflectance``) and is converted by a scale
folded into the normalisation; any other mismatch is refused with one line naming the fix (convert SAR
with ``10 log10(x)``, rescale to / from 8 bits, or declare the data's units with ``data_units=...`` when
the guess is wrong).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from eoreps.errors import ConfigError, DataError

UNITS = ("dn", "byte", "reflectance", "db", "linear", "unknown")
S2_QUANTIFICATION = 10000.0
"""Sentinel-2 L1C/L2A products store reflectance x 10,000 (the ESA quantification value)."""
_SAR_BANDS = frozenset({"VV", "VH", "HH", "HV"})
_BYTE_TYPICAL = (100.0, 300.0)
"""``median(|mean| + |std|)`` of 8-bit images (0..255): above reflectance, below Sentinel-2 DN."""


def is_sar(bands: Sequence[str] | None) -> bool:
    """True when ``bands`` are SAR polarisations (VV, VH, HH, HV)."""
    return bool(bands) and all(str(b).upper() in _SAR_BANDS for b in bands)  # type: ignore[union-attr]


def guess_units(mean: Sequence[float], std: Sequence[float], sar: bool = False) -> str:
    """The unit that per-band ``mean`` / ``std`` suggest (one of :data:`UNITS`, see the module docstring).

    Works for data statistics and for a normalisation alike: ``mean 0, std 10000`` (divide by 10,000)
    expects ``dn``, ``mean -12.6, std 5.3`` expects ``db``.
    """
    pairs = list(zip(mean, std, strict=True))
    identity = all(abs(float(a)) < 1e-6 and abs(float(s) - 1.0) < 1e-6 for a, s in pairs)
    if not mean or identity:
        return "unknown"  # no statistics, or the identity normalisation (it says nothing about units)
    m = statistics.median(float(v) for v in mean)
    sd = statistics.median(abs(float(s)) for s in std)
    if abs(m) < 0.1 and 0.5 <= sd <= 2.0:
        return "unknown"  # already standardised (z-scores): the raw units are gone, nothing to check
    typical = statistics.median(abs(float(a)) + abs(float(s)) for a, s in zip(mean, std, strict=True))
    if m < -1.0:
        return "db"
    if sar and 0.0 <= m <= 2.0:
        return "linear"
    if m >= 0.0 and _BYTE_TYPICAL[0] < typical <= _BYTE_TYPICAL[1]:
        return "byte"
    if typical > 50.0 and m >= 0.0:
        return "dn"
    if 0.0 <= m and typical <= 2.0:
        return "reflectance"
    return "unknown"


@dataclass
class UnitCheck:
    """The outcome of :func:`resolve_units`.

    Attributes:
        weights, data: the units of each side.
        scale: multiply the data by this to get the weights' units (1 when they agree).
        note: one line for cards and results (``dn``, ``reflectance x 10000 -> dn``, ``unchecked``).
    """

    weights: str
    data: str
    scale: float
    note: str


def resolve_units(weights: str, data: str, where: str, modality: str) -> UnitCheck:
    """Compare the weights' and the data's units of ``modality``; convert or refuse.

    Args:
        weights, data: units from :func:`guess_units` (or declared).
        where: what is checked (a backbone file or method), named in the error.
        modality: the data modality, named in the error.

    Raises:
        DataError: a mismatch without a known conversion, one line naming the fix.
    """
    for u in (weights, data):
        if u not in UNITS:
            raise ConfigError(f"data_units={u} is not a unit; choose one of {', '.join(UNITS)}")
    if weights == data or "unknown" in (weights, data):
        return UnitCheck(weights, data, 1.0, weights if weights == data else "unchecked")
    pair = (data, weights)
    if pair == ("reflectance", "dn"):
        return UnitCheck(weights, data, S2_QUANTIFICATION, "reflectance x 10000 -> dn")
    if pair == ("dn", "reflectance"):
        return UnitCheck(weights, data, 1.0 / S2_QUANTIFICATION, "dn / 10000 -> reflectance")
    fixes = {
        ("linear", "db"): "convert it to dB with 10 * log10(x)",
        ("db", "linear"): "convert it to linear power with 10 ** (x / 10)",
        ("reflectance", "byte"): "rescale it to 8 bits (0..255, e.g. clip(x * 255 / max, 0, 255))",
        ("dn", "byte"): "rescale it to 8 bits (0..255, e.g. clip(x * 255 / max, 0, 255))",
        ("byte", "reflectance"): "use the raw reflectance instead of 8-bit images (0..255)",
        ("byte", "dn"): "use the raw digital numbers instead of 8-bit images (0..255)",
    }
    fix = fixes.get(pair, "load the modality the weights were trained on")
    raise DataError(f"{where}: the weights expect '{modality}' in {weights} but the data looks like {data}; "
                    f"{fix}, or pass data_units={weights} if the data already is in {weights}")


__all__ = ["S2_QUANTIFICATION", "UNITS", "UnitCheck", "guess_units", "is_sar", "resolve_units"]
