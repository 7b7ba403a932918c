"""SimEO sensors: Sentinel-2 surface reflectance, clouds and shadows, S2 sensor effects, Sentinel-1.

Clouds and shadows touch S2 only (C-band SAR sees through them), so S1 carries what S2 lacks.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

from eoreps.data.modalities import S2_L2A
from eoreps.data.simeo.fields import block_mean, gamma_unit_mean, gaussian_field, half_plane_mask, normal
from eoreps.data.simeo.params import SIMEO_CLASSES, SimEOParams
from eoreps.data.simeo.world import YEAR, Grid, seasonal

K = len(SIMEO_CLASSES)
_WAVELENGTHS = np.asarray(S2_L2A.wavelengths_nm, np.float32)
_GSD = np.asarray(S2_L2A.gsd_m)


# Rows of the per-class table looked up for every pixel (see :func:`class_tables`).
S2_DORMANT, S2_DELTA, GREEN, ACTIVE, TEXTURE_SD, S1_DB = (
    slice(0, 12),
    slice(12, 24),
    24,
    25,
    26,
    slice(27, 29),
)


def class_tables(rng: np.random.Generator, ctx: dict, ground: dict, humidity: np.ndarray,
                 p: SimEOParams) -> np.ndarray:
    """Per-sample, per-class properties ``(n, 29, K)`` (rows: see the slices above).

    S2: dormant spectrum and peak-minus-dormant difference, both scaled by a per-sample, per-class
    log-normal brightness and per-band shape jitter (intra-class variety); greenness; phenology flag;
    texture strength. S1: sigma0 (dB) class means + incidence-angle slope + crop phenology + wind on
    water + soil moisture (humidity proxy) + per-sample, per-class spread.
    """
    n = len(ctx["region"])
    dorm0 = np.asarray(p.s2_dormant, np.float32)
    peak0 = np.asarray(p.s2_peak, np.float32)
    factor = np.exp(p.s2_patch_brightness_sd * rng.standard_normal((n, K, 1), dtype=np.float32)
                    + p.s2_band_jitter_sd * rng.standard_normal((n, K, 12), dtype=np.float32))
    s1 = np.broadcast_to(np.asarray(p.s1_mean_db, np.float32), (n, K, 2)).copy()
    s1 += (np.asarray(p.s1_incidence_slope_db, np.float32)[None, :, None]
           * (ctx["incidence"] - 37.5)[:, None, None])
    crop, water = SIMEO_CLASSES.index("cropland"), SIMEO_CLASSES.index("water")
    s1[:, crop] += ground["green"][:, crop, None] * np.asarray(p.s1_crop_green_gain_db, np.float32)
    s1[:, water] += (np.maximum(ctx["wind"] - 3.0, 0.0)[:, None]
                     * np.asarray(p.s1_water_wind_gain_db, np.float32))
    land = np.asarray([c not in ("water", "urban") for c in SIMEO_CLASSES], np.float32)
    s1 += p.s1_moisture_gain_db * (humidity - 70.0)[:, None, None] * land[None, :, None]
    s1 += p.s1_patch_sd_db * rng.standard_normal((n, K, 2), dtype=np.float32)
    rows = [dorm0[None] * factor, (peak0 - dorm0)[None] * factor, ground["green"][:, :, None],
            np.broadcast_to(np.asarray(p.phenology_active, np.float32)[None, :, None], (n, K, 1)),
            np.broadcast_to(np.asarray(p.class_texture_sd, np.float32)[None, :, None], (n, K, 1)), s1]
    return np.ascontiguousarray(np.concatenate(rows, axis=2).transpose(0, 2, 1))


def lookup(table: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-pixel class lookup: ``table`` (n, C, K), ``mask`` (n, G, G) -> (n, C, G, G) float32.

    A batched one-hot matrix product: faster than fancy indexing for the ~30 rows looked up at once.
    """
    n, c, k = table.shape
    flat = mask.reshape(n, 1, -1)
    onehot = (flat == np.arange(k)[None, :, None]).astype(np.float32)
    return np.matmul(table, onehot).reshape(n, c, *mask.shape[1:])


def terrain_shading(dem: np.ndarray, ctx: dict, p: SimEOParams) -> np.ndarray:
    """Lambertian topographic illumination factor ``(n, G, G)`` (1 on flat ground).

    cos(i) / cos(sun zenith) with the ~10:30 sun of the region's latitude and the day of year;
    cos(i) = (surface normal) . (sun direction), normal from the DEM gradient on 10 m pixels.
    """
    lat = np.asarray(p.region_latitude, np.float32)[ctx["region"]]
    decl = 23.44 * np.sin(2 * np.pi * (284 + ctx["doy"].astype(np.float32)) / YEAR)
    zen = np.deg2rad(np.clip(lat - decl + 8.0, 5.0, 80.0)).astype(np.float32)  # +8 deg: 10:30 overpass
    az = np.deg2rad(p.sun_azimuth_deg)
    # sun direction: x east, y = image rows (south), z up
    sx = (np.sin(zen) * np.sin(az))[:, None, None]
    sy = (-np.sin(zen) * np.cos(az))[:, None, None]
    sz = np.cos(zen)[:, None, None]
    dzdy, dzdx = np.gradient(dem, 10.0, axis=(1, 2))
    cos_i = (sz - dzdx * sx - dzdy * sy) / np.sqrt(1.0 + dzdx * dzdx + dzdy * dzdy)
    ratio = np.maximum(cos_i, 0.05) / sz
    return (1.0 + p.terrain_shading * (ratio - 1.0)).astype(np.float32)


def s2_surface(
    rng: np.random.Generator, ctx: dict, ground: dict, pix: np.ndarray, p: SimEOParams
) -> np.ndarray:
    """Surface reflectance x1e4 ``(n, 12, G, G)`` before atmosphere and sensor.

    ``pix`` is :func:`lookup` of :func:`class_tables`. Per pixel: dormant + greenness x difference, with
    greenness texture (vigour) and log-brightness texture; per sample: illumination; per pixel: terrain
    shading.
    """
    n = pix.shape[0]
    green_field = gaussian_field(rng, ground["mask"].shape, p.texture_corr_px * 2)
    green = np.clip(pix[:, GREEN] + p.green_texture_sd * green_field * pix[:, ACTIVE], 0.0, 1.15)
    refl = pix[:, S2_DELTA] * green[:, None]
    refl += pix[:, S2_DORMANT]
    illum = np.exp(p.illumination_sd * rng.standard_normal(n, dtype=np.float32))
    refl *= (np.exp(pix[:, TEXTURE_SD] * ground["tex"]) * terrain_shading(ground["dem"], ctx, p)
             * illum[:, None, None])[:, None]
    return refl


def clouds(rng: np.random.Generator, ctx: dict, g: Grid, p: SimEOParams, prob_factor: float = 1.0) -> dict:
    """Cloud opacity, shadow opacity and cloud brightness on the padded grid.

    A sample is cloudy with the region's probability (more in winter); its cover fraction is Beta
    distributed; clouds are a thresholded smooth random field with soft edges; shadows are the cloud
    opacity displaced away from the sun. Returns ``cloudy`` (n,) bool, ``alpha`` (n, G, G) cloud
    opacity 0..1, ``shadow`` (n, G, G) shadow opacity 0..1, ``bright`` (n,) cloud brightness factor,
    ``haze`` (n,) thin-haze level.
    """
    n, G = len(ctx["region"]), g.G
    base = np.asarray(p.region_cloud_prob, np.float32)[ctx["region"]] * prob_factor
    prob = np.clip(base * (1 + p.cloud_season_amplitude * seasonal(ctx["doy"], 15.0)), 0.0, 0.95)
    cloudy = rng.random(n) < prob
    idx = np.flatnonzero(cloudy)
    m = idx.size
    cover = rng.beta(*p.cloud_cover_beta, size=m).astype(np.float32)
    thr = ndtri(1.0 - cover).astype(np.float32)  # the field is N(0, 1): this leaves `cover` above thr
    field = gaussian_field(rng, (m, G, G), p.cloud_corr_px)
    opacity = rng.uniform(0.75, 1.0, m).astype(np.float32)
    a = np.clip((field - thr[:, None, None]) / p.cloud_edge_softness, 0, 1) * opacity[:, None, None]
    # shadows: the cloud field displaced away from the sun (azimuth +180 deg, +-20 deg jitter)
    ang = np.deg2rad(p.sun_azimuth_deg + 180.0 + rng.uniform(-20, 20, m))
    dist = rng.uniform(*p.shadow_offset_px, size=m)
    dy = np.rint(-np.cos(ang) * dist).astype(np.int64)  # rows point south
    dx = np.rint(np.sin(ang) * dist).astype(np.int64)
    yy = (np.arange(G)[None, :, None] - dy[:, None, None]) % G
    xx = (np.arange(G)[None, None, :] - dx[:, None, None]) % G
    sh = a[np.arange(m)[:, None, None], yy, xx] * (1.0 - a)
    alpha = np.zeros((n, G, G), np.float32)
    shadow = np.zeros((n, G, G), np.float32)
    alpha[idx], shadow[idx] = a, sh
    bright = np.exp(p.cloud_brightness_sd * rng.standard_normal(m)).astype(np.float32)
    haze = rng.uniform(0, p.haze_max, m).astype(np.float32)
    return {"cloudy": cloudy, "alpha": alpha, "shadow": shadow, "bright": bright, "haze": haze}


def apply_clouds(refl: np.ndarray, cl: dict, p: SimEOParams) -> np.ndarray:
    """Composite shadows, clouds and haze over surface reflectance ``(n, 12, G, G)`` (in place)."""
    idx = np.flatnonzero(cl["cloudy"])
    if idx.size == 0:
        return refl
    x = refl[idx]
    spec = np.asarray(p.cloud_spectrum, np.float32)[None, :, None, None]
    a = cl["alpha"][idx][:, None]
    x *= (1.0 - p.shadow_darkening * cl["shadow"][idx])[:, None] * (1.0 - a)
    x += a * (spec * cl["bright"][:, None, None, None])
    haze_w = np.clip((490.0 / _WAVELENGTHS) ** 1.5, 0.0, 1.2)[None, :, None, None]  # Rayleigh-ish: blue
    x += cl["haze"][:, None, None, None] * spec * haze_w
    refl[idx] = x
    return refl


def cloud_mask(cl: dict, p: SimEOParams) -> np.ndarray:
    """Boolean cloud-or-shadow mask ``(n, G, G)``."""
    return (cl["alpha"] > p.cloud_mask_threshold) | (cl["shadow"] > p.cloud_mask_threshold)


def s2_sensor(rng: np.random.Generator, refl: np.ndarray, g: Grid, p: SimEOParams) -> np.ndarray:
    """Optics, band resolution, noise, quantisation and no-data: ``(n, 12, G, G)`` -> ``(n, 12, S, S)``.

    20 m and 60 m bands are block-averaged and resampled to 10 m; a 3x3 point-spread function mixes
    neighbouring pixels; Gaussian noise (floor + signal-proportional); rounding to integers as in the
    uint16 product; clipping; NaN for no-data swaths and defective pixels.
    """
    n, s, o = refl.shape[0], g.size, g.off
    win = np.arange(o - 1, o + s + 1)  # the crop plus a 1-px margin for the PSF
    x = np.empty((n, 12, s + 2, s + 2), np.float32)
    i10 = np.flatnonzero(_GSD == 10.0)
    x[:, i10] = refl[:, i10, o - 1:o + s + 1, o - 1:o + s + 1]
    for gsd in (20.0, 60.0):
        idx, b = np.flatnonzero(_GSD == gsd), int(gsd // 10)
        coarse = block_mean(refl[:, idx], b)
        x[:, idx] = coarse[:, :, (win // b)[:, None], (win // b)[None, :]]
    # separable [1, 2, 1] / 4 point-spread function
    x = 0.5 * x[..., 1:-1] + 0.25 * (x[..., :-2] + x[..., 2:])
    x = 0.5 * x[..., 1:-1, :] + 0.25 * (x[..., :-2, :] + x[..., 2:, :])
    x += (p.s2_noise_floor + p.s2_noise_relative * x) * normal(rng, x.shape)
    np.clip(np.rint(x, out=x), 0.0, p.s2_saturation, out=x)
    bad = rng.random((n, s, s)) < p.s2_bad_pixel_prob
    edge = rng.random(n) < p.s2_nodata_patch_prob
    if edge.any():
        bad[edge] |= half_plane_mask(rng, int(edge.sum()), s, p.s2_nodata_max_fraction)
    bi, by, bx = np.nonzero(bad)
    x[bi, :, by, bx] = np.nan
    return x


def s1_backscatter(rng: np.random.Generator, ctx: dict, ground: dict, pix: np.ndarray, g: Grid,
                   p: SimEOParams) -> np.ndarray:
    """Sentinel-1 sigma0 in dB ``(n, 2, S, S)`` (VV, VH), cropped.

    Per-class means from :func:`class_tables`; pixel texture partly shared with S2 (same objects);
    terrain foreshortening (slopes facing the east-looking sensor are brighter); thermal noise floor
    (NESZ) added in linear power; then multiplicative gamma speckle with ``s1_looks`` looks (mean 1,
    variance 1/L in linear power); no-data swaths.
    """
    n, sz, o = pix.shape[0], g.size, g.off
    rho = p.s1_s2_texture_corr
    own = gaussian_field(rng, (n, sz, sz), 1.0)
    dem = ground["dem"]
    dzdx = (dem[:, o:o + sz, o + 1:o + sz + 1] - dem[:, o:o + sz, o - 1:o + sz - 1]) / 20.0  # 10 m pixels
    extra = p.s1_texture_sd_db * (rho * g.crop(ground["tex"]) + np.sqrt(1 - rho**2) * own)
    extra += p.s1_terrain_gain_db * np.rad2deg(np.arctan(dzdx))
    db = g.crop(pix[:, S1_DB]) + extra[:, None]
    lin = np.exp(db * np.float32(np.log(10.0) / 10.0)) + np.float32(10 ** (p.s1_nesz_db / 10))
    lin *= gamma_unit_mean(rng, lin.shape, p.s1_looks)
    out = (10.0 * np.log10(np.maximum(lin, 1e-6))).astype(np.float32)
    edge = rng.random(n) < p.s1_nodata_patch_prob
    if edge.any():
        nd = half_plane_mask(rng, int(edge.sum()), g.size, p.s2_nodata_max_fraction)
        sub = out[edge]
        sub[np.broadcast_to(nd[:, None], sub.shape)] = np.nan
        out[edge] = sub
    return out
