"""Unit checks: DN vs reflectance vs dB from statistics (eoreps.models.units)."""

from __future__ import annotations

import pytest

from eoreps.data.modalities import S1, S2_L2A
from eoreps.errors import DataError
from eoreps.models.units import guess_units, resolve_units


def test_guess_units_of_normalisations_and_data() -> None:
    assert guess_units([0.0] * 13, [10000.0] * 13) == "dn"  # torchgeo SSL4EO-S12: x / 10000
    assert guess_units(S2_L2A.mean, S2_L2A.std) == "dn"  # eoreps' S2: reflectance x 1e4
    assert guess_units([m / 1e4 for m in S2_L2A.mean], [s / 1e4 for s in S2_L2A.std]) == "reflectance"
    assert guess_units(S1.mean, S1.std, sar=True) == "db"
    assert guess_units([-12.59, -20.26], [5.26, 5.91], sar=True) == "db"  # torchgeo S1 MAE
    assert guess_units([0.06, 0.015], [0.05, 0.01], sar=True) == "linear"
    assert guess_units([0.0, 0.0], [1.0, 1.0]) == "unknown"  # the identity normalisation says nothing
    assert guess_units([], []) == "unknown"


def test_same_units_pass_unknown_is_unchecked() -> None:
    assert resolve_units("dn", "dn", "w", "s2").scale == 1.0
    chk = resolve_units("unknown", "dn", "w", "s2")
    assert chk.scale == 1.0 and chk.note == "unchecked"


def test_dn_and_reflectance_are_converted_by_the_known_rule() -> None:
    up = resolve_units("dn", "reflectance", "w", "s2")
    assert up.scale == 10000.0 and "reflectance x 10000" in up.note
    down = resolve_units("reflectance", "dn", "w", "s2")
    assert down.scale == pytest.approx(1e-4) and "dn / 10000" in down.note


@pytest.mark.parametrize("weights, data, fix", [
    ("db", "linear", "10 * log10(x)"),
    ("linear", "db", "10 ** (x / 10)"),
    ("dn", "db", "load the modality the weights were trained on"),
    ("db", "reflectance", "load the modality the weights were trained on"),
])
def test_mismatches_without_a_rule_are_refused_in_one_line(weights, data, fix) -> None:
    with pytest.raises(DataError) as e:
        resolve_units(weights, data, "runs/moco.pth", "s1")
    msg = str(e.value)
    assert msg.startswith("runs/moco.pth:") and "\n" not in msg and fix in msg
    assert f"data_units={weights}" in msg


def test_eight_bit_normalisations_and_data_are_byte() -> None:
    """Satlas RGB / SSL4EO-L divide by 255: 8-bit inputs, not Sentinel-2 digital numbers."""
    assert guess_units([0.0] * 3, [255.0] * 3) == "byte"  # Normalize(0, 255)
    assert guess_units([110.0, 105.0, 95.0], [50.0, 45.0, 40.0]) == "byte"  # statistics of 8-bit images
    assert guess_units(S2_L2A.mean, S2_L2A.std) == "dn"  # S2 DN stays above the 8-bit range


@pytest.mark.parametrize("weights, data", [
    ("byte", "dn"), ("byte", "reflectance"), ("dn", "byte"), ("reflectance", "byte"),
])
def test_byte_mismatches_are_refused_naming_the_rescale(weights, data) -> None:
    with pytest.raises(DataError) as e:
        resolve_units(weights, data, "satlas.pth", "s2")
    msg = str(e.value)
    assert msg.startswith("satlas.pth:") and "\n" not in msg
    assert ("rescale it to 8 bits" if weights == "byte" else "instead of 8-bit images") in msg
    assert resolve_units("byte", "byte", "w", "s2").scale == 1.0


def test_standardised_data_is_not_read_as_reflectance() -> None:
    """z-scored data (means ~0, stds ~1, not exactly) must not be multiplied by 10,000 for DN weights."""
    z_mean, z_std = [0.03, -0.02, 0.01, 0.05], [0.97, 1.04, 0.99, 1.1]
    assert guess_units(z_mean, z_std) == "unknown"
    assert guess_units(z_mean, z_std, sar=True) == "unknown"
    assert resolve_units("dn", guess_units(z_mean, z_std), "w", "s2").scale == 1.0
    assert guess_units([0.12, 0.1, 0.09], [0.06, 0.05, 0.05]) == "reflectance"  # real reflectance still is
