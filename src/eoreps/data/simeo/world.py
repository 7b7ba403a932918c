"""SimEO ground truth: acquisition context, terrain, land cover, phenology and weather.

All functions are batched over ``n`` samples and work on a padded square grid of side ``G`` (the
sample plus a margin, see :func:`grid`); the caller crops the centre ``size x size``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eoreps.data.simeo.fields import gaussian_field, normal
from eoreps.data.simeo.params import SIMEO_CLASSES, SimEOParams

K = len(SIMEO_CLASSES)
YEAR = 365.25


@dataclass(frozen=True)
class Grid:
    """A padded simulation grid: side ``G`` (a multiple of 6 for the 60 m bands), crop offset and size."""

    G: int
    off: int
    size: int

    def crop(self, x: np.ndarray) -> np.ndarray:
        """Centre ``size x size`` of the last two axes."""
        s = slice(self.off, self.off + self.size)
        return x[..., s, s]


def grid(size: int, pad: int) -> Grid:
    """Padded grid for a ``size``-pixel sample with at least ``pad`` pixels margin."""
    g = -(-(size + 2 * pad) // 6) * 6
    return Grid(G=g, off=(g - size) // 2, size=size)


def sample_context(
    rng: np.random.Generator, n: int, p: SimEOParams, region: np.ndarray | None = None
) -> dict:
    """Per-sample acquisition context.

    Returns dict of ``(n,)`` arrays: ``region`` int64, ``doy`` int64 (1..365), ``wind`` m/s,
    ``urbanisation`` (0..1, district level), ``incidence`` (S1 incidence angle, deg).
    """
    if region is None:
        w = np.asarray(p.region_weights, dtype=np.float64)
        region = rng.choice(len(w), size=n, p=w / w.sum())
    region = np.asarray(region, dtype=np.int64)
    doy = rng.integers(1, 366, size=n)
    wind_mean = np.asarray(p.region_wind, dtype=np.float32)[region]
    wind = rng.gamma(p.wind_shape, wind_mean / p.wind_shape).astype(np.float32)
    m = np.asarray(p.region_urbanisation, dtype=np.float64)[region]
    conc = 5.0  # Beta concentration of district urbanisation around the region mean
    urb = rng.beta(m * conc, (1 - m) * conc).astype(np.float32)
    lo, hi = p.s1_incidence_range_deg
    inc = rng.uniform(lo, hi, n).astype(np.float32)
    return {
        "region": region,
        "doy": doy.astype(np.int64),
        "wind": wind,
        "urbanisation": urb,
        "incidence": inc,
    }


def seasonal(doy: np.ndarray, peak_doy: float) -> np.ndarray:
    """cos(2 pi (doy - peak) / year): +1 at ``peak_doy``, -1 half a year later."""
    return np.cos(2 * np.pi * (np.asarray(doy, dtype=np.float32) - peak_doy) / YEAR).astype(np.float32)


def simulate_ground(
    rng: np.random.Generator, ctx: dict, g: Grid, p: SimEOParams, scene: bool = False
) -> dict:
    """Terrain, land cover and phenology on the padded grid.

    Returns:
        ``dem`` (n, G, G) m; ``mask`` (n, G, G) int64 true classes; ``green`` (n, K) seasonal greenness
        0..1 per class; ``tex`` (n, G, G) shared texture field (S2 and S1 see the same objects);
        ``elev_z`` (n,) patch elevation in regional standard deviations.
    """
    n, G = len(ctx["region"]), g.G
    r = ctx["region"]
    # --- terrain: regional base + patch offset + local relief (periodic field, cropped later)
    e0 = rng.standard_normal(n).astype(np.float32)
    local = gaussian_field(rng, (n, G, G), p.dem_corr_px)
    base = np.asarray(p.region_elevation, np.float32)[r]
    relief = np.asarray(p.region_relief, np.float32)[r]
    lrelief = np.asarray(p.region_local_relief, np.float32)[r]
    dem = base[:, None, None] + relief[:, None, None] * e0[:, None, None] + lrelief[:, None, None] * local
    dem += p.dem_noise_m * normal(rng, dem.shape)
    z = e0[:, None, None] + p.dem_local_weight * local  # standardised elevation seen by the classes

    # --- land cover: argmax of per-class random fields + log patch weights + elevation affinity
    prior = np.asarray(p.region_class_prior, np.float64)[r]  # (n, K)
    urban = SIMEO_CLASSES.index("urban")
    m = np.asarray(p.region_urbanisation, np.float64)[r]
    prior[:, urban] *= np.exp(p.urban_urbanisation_gain * (ctx["urbanisation"] - m))
    prior /= prior.sum(1, keepdims=True)
    conc = p.scene_concentration if scene else p.lc_concentration
    gam = rng.standard_gamma(np.maximum(prior * conc, 1e-3))  # Dirichlet via normalised gammas
    w = gam / np.maximum(gam.sum(1, keepdims=True), 1e-12)
    logw = np.log(np.maximum(w, 1e-4)).astype(np.float32)
    logits = p.lc_field_amplitude * gaussian_field(rng, (n, K, G, G), p.lc_corr_px)
    logits += logw[:, :, None, None]
    aff = np.asarray(p.class_elevation_affinity, np.float32)
    logits += aff[None, :, None, None] * z[:, None]
    if scene:
        logits += p.scene_zone_amplitude * gaussian_field(rng, (n, K, G, G), p.scene_zone_corr_px)
    mask = logits.argmax(1).astype(np.int64)

    # --- phenology: greenness per class from day of year, region shift and per-sample jitter
    jitter = rng.standard_normal((n, K)).astype(np.float32) * np.asarray(p.phenology_jitter_days, np.float32)
    peak = (
        np.asarray(p.phenology_peak_doy, np.float32)
        + np.asarray(p.region_phenology_shift, np.float32)[r, None]
    )
    phase = 2 * np.pi * (ctx["doy"][:, None].astype(np.float32) - peak - jitter) / YEAR
    green = ((1 + np.cos(phase)) / 2) ** np.asarray(p.phenology_sharpness, np.float32)
    green *= np.asarray(p.phenology_active, np.float32)
    tex = gaussian_field(rng, (n, G, G), p.texture_corr_px)
    return {"dem": dem.astype(np.float32), "mask": mask, "green": green.astype(np.float32), "tex": tex,
            "elev_z": e0}


def weather(rng: np.random.Generator, ctx: dict, dem_mean: np.ndarray, urban_cover: np.ndarray,
            cloud_cover: np.ndarray, p: SimEOParams) -> np.ndarray:
    """ERA5-like weather ``(n, 3)``: 2 m temperature (deg C), relative humidity (%), wind (m/s).

    Temperature follows the regional seasonal cycle (coldest ~20 January), the lapse rate and the urban
    heat island; humidity rises with cloud cover and falls with warm anomalies.
    """
    r, n = ctx["region"], len(ctx["region"])
    tmean = np.asarray(p.region_temp_mean, np.float32)[r]
    tamp = np.asarray(p.region_temp_amplitude, np.float32)[r]
    t_season = tmean - tamp * seasonal(ctx["doy"], 20.0)
    elev = dem_mean - np.asarray(p.region_elevation, np.float32)[r]
    anomaly = p.temp_noise_sd * rng.standard_normal(n).astype(np.float32)
    temp = t_season + p.lapse_rate * elev + p.urban_heat_island * urban_cover + anomaly
    hum = (np.asarray(p.region_humidity, np.float32)[r] + p.humidity_cloud_gain * (cloud_cover - 0.2)
           - p.humidity_temp_gain * anomaly + p.humidity_noise_sd * rng.standard_normal(n).astype(np.float32))
    hum = np.clip(hum, 5.0, 100.0)
    return np.stack([temp, hum, ctx["wind"]], axis=1).astype(np.float32)


def aux_landcover(rng: np.random.Generator, mask: np.ndarray, p: SimEOParams) -> np.ndarray:
    """A WorldCover-like auxiliary map ``(n, 1, H, W)`` int64 from the true ``mask`` ``(n, H, W)``.

    Coarser (blocks of ``landcover_aux_block`` px take the class at their centre) and wrong in a
    fraction of blocks, mostly towards a plausible neighbour class.
    """
    n, h, w = mask.shape
    b = p.landcover_aux_block
    iy = np.minimum(np.arange(0, h, b) + b // 2, h - 1)
    ix = np.minimum(np.arange(0, w, b) + b // 2, w - 1)
    coarse = mask[:, iy][:, :, ix]
    wrong = rng.random(coarse.shape) < p.landcover_aux_error
    confused = np.asarray(p.landcover_aux_confusion, np.int64)[coarse]
    random_cls = rng.integers(0, K, coarse.shape)
    use_conf = rng.random(coarse.shape) < p.landcover_aux_confusion_share
    coarse = np.where(wrong, np.where(use_conf, confused, random_cls), coarse)
    full = np.repeat(np.repeat(coarse, b, axis=1), b, axis=2)[:, :h, :w]
    return full[:, None].astype(np.int64)
