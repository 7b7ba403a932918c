"""SimEO targets: class labels, the coarse NO2 column and the heteroscedastic ground-level NO2 target."""

from __future__ import annotations

import numpy as np

from eoreps.data.simeo.fields import class_cover
from eoreps.data.simeo.params import SIMEO_CLASSES, SimEOParams
from eoreps.data.simeo.world import seasonal

K = len(SIMEO_CLASSES)
URBAN = SIMEO_CLASSES.index("urban")


def labels(mask: np.ndarray, p: SimEOParams) -> dict[str, np.ndarray]:
    """``label`` (n,) int64 dominant class (ties: lowest index), ``multilabel`` (n, K) float32
    (cover >= ``multilabel_threshold``) and ``cover`` (n, K) float32 class fractions of ``mask`` (n, H, W)."""
    cover = class_cover(mask, K)
    return {"label": cover.argmax(1).astype(np.int64),
            "multilabel": (cover >= p.multilabel_threshold).astype(np.float32), "cover": cover}


def no2_column(rng: np.random.Generator, ctx: dict, urban_cover: np.ndarray, size: int,
               p: SimEOParams) -> tuple[np.ndarray, np.ndarray]:
    """Sentinel-5P-like tropospheric NO2 column.

    Returns the observed field ``(n, 1, size, size)`` umol/m^2 (a ~5.5 km pixel: nearly constant over
    a patch, with a weak gradient and a log-normal retrieval error) and the true column ``(n,)``.
    """
    n = len(ctx["region"])
    bg = np.asarray(p.region_no2_background, np.float32)[ctx["region"]]
    true = (bg + p.no2_urbanisation_gain * ctx["urbanisation"] + p.no2_urban_gain * urban_cover)
    true = (
        true
        * (1 + p.no2_season_amplitude * seasonal(ctx["doy"], 15.0))
        / (1 + ctx["wind"] / p.no2_wind_scale)
    )
    obs = true * np.exp(p.no2_retrieval_sd * rng.standard_normal(n)).astype(np.float32)
    coord = (np.arange(size, dtype=np.float32) - (size - 1) / 2) / 550.0  # in 5.5 km satellite pixels
    gy, gx = (p.no2_gradient_sd * rng.standard_normal((2, n))).astype(np.float32)
    field = obs[:, None, None] * (
        1 + gy[:, None, None] * coord[None, :, None] + gx[:, None, None] * coord[None, None, :]
    )
    return field[:, None].astype(np.float32), true.astype(np.float32)


def ground_no2(rng: np.random.Generator, ctx: dict, urban_cover: np.ndarray, column_true: np.ndarray,
               p: SimEOParams) -> dict[str, np.ndarray]:
    """Ground-level NO2-like target [ug/m^3] with input-dependent (heteroscedastic) Gaussian noise.

    mean = base + urban_gain * urban cover + column_gain * true column + winter_gain * max(0, winter)
    - wind_gain * wind (>= target_min); std = noise_base + noise_relative * mean + noise_urban * urban
    cover. Returns ``target``, ``target_mean`` and ``target_std``, each (n,) float32.
    """
    winter = np.maximum(seasonal(ctx["doy"], 15.0), 0.0)
    mean = (p.target_base + p.target_urban_gain * urban_cover + p.target_column_gain * column_true
            + p.target_winter_gain * winter - p.target_wind_gain * ctx["wind"])
    mean = np.maximum(mean, p.target_min).astype(np.float32)
    std = (p.target_noise_base + p.target_noise_relative * mean + p.target_noise_urban * urban_cover).astype(
        np.float32
    )
    target = mean + std * rng.standard_normal(len(mean)).astype(np.float32)
    return {"target": target.astype(np.float32), "target_mean": mean, "target_std": std}
