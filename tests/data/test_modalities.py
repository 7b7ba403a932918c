"""Modality descriptions: complete, consistent, and one-line errors for unknown names."""

from __future__ import annotations

import pytest

from eoreps.data.modalities import MODALITIES, S2_L1C_BANDS, S2_L2A_BANDS, get_modality
from eoreps.errors import ConfigError


def test_all_required_modalities_are_described():
    for name in ("s2", "s2_l1c", "s1", "dem", "landcover", "weather", "season", "no2"):
        m = get_modality(name)
        assert m.num_bands == len(m.mean) == len(m.std) == len(m.gsd_m) == len(m.wavelengths_nm)


def test_sentinel2_band_sets():
    l1c, l2a = get_modality("s2_l1c"), get_modality("s2")
    assert l1c.num_bands == 13 and l2a.num_bands == 12 and "B10" not in l2a.bands
    assert l1c.bands == S2_L1C_BANDS and l2a.bands == S2_L2A_BANDS
    wl = [w for w in l1c.wavelengths_nm]
    assert all(w is not None for w in wl)
    # B8A (865 nm) sits between B08 (833 nm) and B09 (945 nm) in storage order.
    i = l1c.band_index("B8A")
    assert wl[i - 1] < wl[i] < wl[i + 1]
    assert l2a.gsd_m[l2a.band_index("B02")] == 10 and l2a.gsd_m[l2a.band_index("B01")] == 60


def test_kinds_and_units():
    assert get_modality("s1").bands == ("VV", "VH")
    assert get_modality("weather").kind == "vector" and get_modality("season").kind == "vector"
    assert get_modality("landcover").categorical and get_modality("landcover").num_classes == 8
    assert all(m.kind in ("image", "vector") for m in MODALITIES.values())


def test_unknown_modality_and_band_are_one_line_errors():
    with pytest.raises(ConfigError, match="did you mean 's2_l1c'") as e:
        get_modality("s2_l2c")
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="B8A"):
        get_modality("s2").band_index("B8a")
