"""Modalities: what each input channel is, physically.

A :class:`Modality` names its bands, their central wavelengths (where the sensor has them), ground
sampling distance, storage dtype and the normalisation statistics used when no dataset-specific
statistics were computed (see :mod:`eoreps.data.stats`). ``kind`` is ``"image"`` for rasters
``(C, H, W)`` and ``"vector"`` for per-sample scalars ``(C,)`` (weather, season) that early fusion
broadcasts to constant planes.

Units (the same in SimEO and the real loaders):

* Sentinel-2: surface (L2A) or top-of-atmosphere (L1C) reflectance x 10,000, as in the ESA products.
* Sentinel-1: backscatter sigma0 in dB (VV, VH).
* DEM: metres above sea level.  Land cover: integer class index.
* Weather: 2 m air temperature (deg C), relative humidity (%), 10 m wind speed (m/s), ERA5-like.
* Season: (sin, cos) of 2 pi day-of-year / 365.25.
* NO2: tropospheric column in micro-mol / m^2 at Sentinel-5P-like resolution (~5.5 km).

Default statistics for S2 L2A and S1 are BigEarthNet-wide means / standard deviations as published
with that dataset; the others are the SimEO population's (documented in :mod:`eoreps.data.simeo`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eoreps.errors import unknown_name


@dataclass(frozen=True)
class Modality:
    """One input modality.

    Attributes:
        name: short key used in samples and on the command line (``"s2"``, ``"s1"``, ...).
        bands: band names in storage order.
        wavelengths_nm: central wavelength per band in nm, ``None`` where it has none.
        gsd_m: native ground sampling distance per band in metres.
        dtype: storage dtype of the native product (``"uint16"``, ``"float32"``, ``"int64"``).
        mean, std: per-band normalisation statistics (same length as ``bands``).
        kind: ``"image"`` (C, H, W) or ``"vector"`` (C,).
        categorical: values are class indices (one-hot before use as input).
        description: one line for humans.
    """

    name: str
    bands: tuple[str, ...]
    wavelengths_nm: tuple[float | None, ...]
    gsd_m: tuple[float, ...]
    dtype: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    kind: str = "image"
    categorical: bool = False
    description: str = ""
    num_classes: int | None = field(default=None)

    def __post_init__(self) -> None:
        n = len(self.bands)
        for attr in ("wavelengths_nm", "gsd_m", "mean", "std"):
            if len(getattr(self, attr)) != n:
                raise ValueError(
                    f"Modality {self.name}: {attr} has {len(getattr(self, attr))} entries, bands {n}"
                )
        if self.kind not in ("image", "vector"):
            raise ValueError(f"Modality {self.name}: kind must be 'image' or 'vector', got {self.kind!r}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"Modality {self.name}: std must be positive")

    @property
    def num_bands(self) -> int:
        """Number of bands (channels)."""
        return len(self.bands)

    def band_index(self, band: str) -> int:
        """Index of ``band`` in storage order (error naming the valid bands if unknown)."""
        if band not in self.bands:
            raise unknown_name(f"{self.name} band", band, self.bands)
        return self.bands.index(band)


# Sentinel-2 MSI: central wavelengths (S2A) and native resolutions.
_S2_ALL = {
    "B01": (442.7, 60.0), "B02": (492.4, 10.0), "B03": (559.8, 10.0), "B04": (664.6, 10.0),
    "B05": (704.1, 20.0), "B06": (740.5, 20.0), "B07": (782.8, 20.0), "B08": (832.8, 10.0),
    "B8A": (864.7, 20.0), "B09": (945.1, 60.0), "B10": (1373.5, 60.0), "B11": (1613.7, 20.0),
    "B12": (2202.4, 20.0),
}
# BigEarthNet (L2A) band statistics, reflectance x 10,000.
_S2_MEAN = {"B01": 340.76, "B02": 429.94, "B03": 614.22, "B04": 590.24, "B05": 950.68, "B06": 1792.46,
            "B07": 2075.47, "B08": 2218.94, "B8A": 2266.46, "B09": 2246.07, "B10": 25.0, "B11": 1594.43,
            "B12": 1009.33}
_S2_STD = {"B01": 554.81, "B02": 572.41, "B03": 582.87, "B04": 675.88, "B05": 729.89, "B06": 1096.01,
           "B07": 1273.45, "B08": 1365.45, "B8A": 1356.13, "B09": 1302.30, "B10": 40.0, "B11": 1079.19,
           "B12": 818.86}

S2_L1C_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
S2_L2A_BANDS = tuple(b for b in S2_L1C_BANDS if b != "B10")  # the cirrus band is dropped in L2A


def _s2(name: str, bands: tuple[str, ...], desc: str) -> Modality:
    return Modality(
        name=name, bands=bands,
        wavelengths_nm=tuple(_S2_ALL[b][0] for b in bands), gsd_m=tuple(_S2_ALL[b][1] for b in bands),
        dtype="uint16", mean=tuple(_S2_MEAN[b] for b in bands), std=tuple(_S2_STD[b] for b in bands),
        description=desc,
    )


S2_L2A = _s2("s2", S2_L2A_BANDS, "Sentinel-2 L2A surface reflectance x 1e4, 12 bands")
S2_L1C = _s2("s2_l1c", S2_L1C_BANDS, "Sentinel-2 L1C top-of-atmosphere reflectance x 1e4, 13 bands")
S1 = Modality(
    name="s1", bands=("VV", "VH"), wavelengths_nm=(None, None), gsd_m=(10.0, 10.0), dtype="float32",
    mean=(-12.62, -19.29), std=(5.12, 5.46), description="Sentinel-1 GRD backscatter sigma0 in dB (C band)",
)
DEM = Modality(
    name="dem", bands=("elevation",), wavelengths_nm=(None,), gsd_m=(30.0,), dtype="float32",
    mean=(350.0,), std=(300.0,), description="Digital elevation model, metres above sea level",
)
LANDCOVER = Modality(
    name="landcover", bands=("class",), wavelengths_nm=(None,), gsd_m=(10.0,), dtype="int64",
    mean=(0.0,), std=(1.0,), categorical=True, num_classes=8,
    description="Land-cover map (DFC2020-like classes), an auxiliary input such as ESA WorldCover",
)
WEATHER = Modality(
    name="weather", bands=("temperature", "humidity", "wind_speed"), wavelengths_nm=(None, None, None),
    gsd_m=(31000.0, 31000.0, 31000.0), dtype="float32", mean=(10.0, 70.0, 4.0), std=(8.0, 15.0, 2.5),
    kind="vector", description="ERA5-like 2 m temperature (C), relative humidity (%), 10 m wind speed (m/s)",
)
SEASON = Modality(
    name="season", bands=("doy_sin", "doy_cos"), wavelengths_nm=(None, None), gsd_m=(float("inf"),) * 2,
    dtype="float32", mean=(0.0, 0.0), std=(0.7071, 0.7071), kind="vector",
    description="Acquisition season as (sin, cos) of 2 pi day-of-year / 365.25",
)
NO2 = Modality(
    name="no2", bands=("no2_column",), wavelengths_nm=(None,), gsd_m=(5500.0,), dtype="float32",
    mean=(60.0,), std=(35.0,),
    description="Sentinel-5P-like tropospheric NO2 column (micro-mol/m^2), coarse (~5.5 km) grid",
)

MODALITIES: dict[str, Modality] = {
    m.name: m for m in (S2_L2A, S2_L1C, S1, DEM, LANDCOVER, WEATHER, SEASON, NO2)
}


def get_modality(name: str) -> Modality:
    """Look up a modality by name; unknown names raise a one-line :class:`ConfigError`."""
    if name not in MODALITIES:
        raise unknown_name("modality", name, list(MODALITIES))
    return MODALITIES[name]
