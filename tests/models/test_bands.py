"""Band mapping of the data's bands to the weights' bands (eoreps.models.bands)."""

from __future__ import annotations

import pytest
import torch

from eoreps.data.modalities import S2_L1C_BANDS, S2_L2A_BANDS
from eoreps.errors import ConfigError, DataError
from eoreps.models.bands import BandSelect, canonical_band, concat_maps, identity_map, map_bands

# the spellings torchgeo's SSL4EO-S12 enums use
TORCHGEO_S2 = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8a", "B9", "B10", "B11", "B12"]


@pytest.mark.parametrize("raw, canon", [("B1", "B01"), ("b01", "B01"), ("B8a", "B8A"), ("B8A", "B8A"),
                                        ("S2_B4", "B04"), ("B12", "B12"), ("vv", "VV"), ("SR_B4", "SR_B4")])
def test_canonical_band(raw, canon) -> None:
    assert canonical_band(raw) == canon


def test_s2_13_bands_onto_13_weights_is_identity() -> None:
    bm = map_bands(S2_L1C_BANDS, TORCHGEO_S2)
    assert bm.identity and not bm.filled and not bm.dropped


def test_s2_12_bands_fill_b10_with_the_mean() -> None:
    bm = map_bands(S2_L2A_BANDS, TORCHGEO_S2)
    assert bm.filled == {"B10": "mean"} and bm.dropped == []
    assert bm.sources[10] is None and bm.sources[9] == S2_L2A_BANDS.index("B09")
    x = torch.arange(12.0).view(1, 12, 1, 1).expand(2, 12, 3, 3)
    y = BandSelect(bm)(x)
    assert y.shape == (2, 13, 3, 3)
    assert torch.all(y[:, 10] == 0)  # 0 after normalisation = the weights' mean
    assert torch.equal(y[:, 11], x[:, 10]) and torch.equal(y[:, 8], x[:, 8])  # B11, B8A
    assert "filled B10 (mean)" in bm.describe()


def test_s2_10_bands_and_nearest_fill() -> None:
    ten = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
    bm = map_bands(ten, TORCHGEO_S2)
    assert set(bm.filled) == {"B01", "B09", "B10"} and set(bm.filled.values()) == {"mean"}
    near = map_bands(ten, TORCHGEO_S2, fill="nearest")
    # B01 (443 nm) <- B02 (492), B09 (945) <- B8A (865), B10 (1374) <- B11 (1614)
    assert near.filled == {"B01": "copy of B02", "B09": "copy of B8A", "B10": "copy of B11"}
    y = BandSelect(near)(torch.arange(10.0).view(1, 10, 1, 1))
    assert y.flatten().tolist()[:3] == [0.0, 0.0, 1.0] and y.flatten()[9] == ten.index("B8A")


def test_s2_4_bands_rgbn_and_reordered_rgb() -> None:
    rgbn = ["B02", "B03", "B04", "B08"]
    bm = map_bands(rgbn, TORCHGEO_S2)
    assert len(bm.filled) == 9 and bm.sources[1:4] == [0, 1, 2] and bm.sources[7] == 3
    rgb = map_bands(rgbn, ["B4", "B3", "B2"])  # torchgeo's SENTINEL2_RGB order
    assert rgb.dropped == ["B08"] and rgb.sources == [2, 1, 0] and not rgb.filled
    y = BandSelect(rgb)(torch.tensor([10.0, 20.0, 30.0, 40.0]).view(1, 4, 1, 1))
    assert y.flatten().tolist() == [30.0, 20.0, 10.0]


def test_s1_two_bands() -> None:
    assert map_bands(["VV", "VH"], ["vv", "vh"]).identity
    swapped = map_bands(["VH", "VV"], ["VV", "VH"])
    assert swapped.sources == [1, 0] and swapped.describe().endswith("reordered")
    only_vv = map_bands(["VV"], ["VV", "VH"], fill="nearest")  # SAR has no wavelength: mean
    assert only_vv.filled == {"VH": "mean"}


def test_no_common_band_and_bad_rule_are_one_line_errors() -> None:
    with pytest.raises(DataError, match="share none") as e:
        map_bands(["VV", "VH"], TORCHGEO_S2, where="w.pth")
    assert str(e.value).startswith("w.pth") and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="band_fill='zero'"):
        map_bands(S2_L2A_BANDS, TORCHGEO_S2, fill="zero")


def test_concat_maps_offsets_the_second_modality() -> None:
    both = concat_maps([map_bands(S2_L2A_BANDS, TORCHGEO_S2), identity_map(["VV", "VH"])])
    assert len(both.weights_bands) == 15 and both.sources[-2:] == [12, 13]
    y = BandSelect(both)(torch.arange(14.0).view(1, 14, 1, 1)).flatten()
    assert y[-2:].tolist() == [12.0, 13.0] and y[10] == 0
