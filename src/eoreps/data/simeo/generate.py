"""SimEO patches and scenes: the full pipeline, batched and chunked, deterministic from a seed."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from eoreps.data.simeo import sensors, targets, world
from eoreps.data.simeo.params import SPLITS, SimEOParams

CHUNK = 48
"""Samples simulated at once. Small chunks keep temporaries in reused heap memory (page faults on
fresh large arrays cost more than the computation); results depend on the seed and n only."""

_STREAM = {"patches": 0, "scenes": 1, "plants": 2, "splits": 3}

PATCH_KEYS = ("s2", "s1", "dem", "landcover", "weather", "season", "no2", "mask", "label", "multilabel",
              "cover", "target", "target_mean", "target_std", "region", "doy", "cloud", "cloud_fraction",
              "split")
"""Keys returned by :func:`generate_patches` (scenes: all but ``split``)."""


def chunk_rng(seed: int, stream: str, chunk: int) -> np.random.Generator:
    """Independent generator for one chunk of one stream (patches, scenes, plants, splits)."""
    return np.random.default_rng([int(seed), _STREAM[stream], int(chunk)])


def season_vector(doy: np.ndarray) -> np.ndarray:
    """``(n, 2)`` float32 (sin, cos) of 2 pi doy / 365.25."""
    a = 2 * np.pi * np.asarray(doy, np.float64) / world.YEAR
    return np.stack([np.sin(a), np.cos(a)], 1).astype(np.float32)


def simulate(rng: np.random.Generator, n: int, size: int, p: SimEOParams, *, scene: bool = False,
             region: np.ndarray | None = None, edit=None, cloud_factor: float = 1.0) -> dict[str, np.ndarray]:
    """Simulate ``n`` co-registered samples of side ``size`` (see :data:`PATCH_KEYS` for the output).

    ``edit(rng, ctx, ground, g, stage, refl=None)`` optionally changes the ground truth after land cover
    (``stage="ground"``) and the surface reflectance before clouds (``stage="surface"``); the power-plant
    set uses it to place sites and plumes. It may add keys to ``ctx["extra"]``.
    """
    g = world.grid(size, max(p.pad_px, int(p.scene_zone_corr_px)) if scene else p.pad_px)
    ctx = world.sample_context(rng, n, p, region)
    ctx["extra"] = {}
    ground = world.simulate_ground(rng, ctx, g, p, scene=scene)
    if edit is not None:
        edit(rng, ctx, ground, g, "ground")
    mask = np.ascontiguousarray(g.crop(ground["mask"]))
    lab = targets.labels(mask, p)
    urban = lab["cover"][:, targets.URBAN]
    cl = sensors.clouds(rng, ctx, g, p, prob_factor=cloud_factor)
    cmask = np.ascontiguousarray(g.crop(sensors.cloud_mask(cl, p)))
    cloud_fraction = cmask.reshape(n, -1).mean(1).astype(np.float32)
    dem = np.ascontiguousarray(g.crop(ground["dem"]))
    wx = world.weather(rng, ctx, dem.reshape(n, -1).mean(1), urban, cloud_fraction, p)
    ctx["weather"] = wx
    pix = sensors.lookup(sensors.class_tables(rng, ctx, ground, wx[:, 1], p), ground["mask"])
    refl = sensors.s2_surface(rng, ctx, ground, pix, p)
    if edit is not None:
        edit(rng, ctx, ground, g, "surface", refl)
    refl = sensors.apply_clouds(refl, cl, p)
    s2 = sensors.s2_sensor(rng, refl, g, p)
    del refl
    s1 = sensors.s1_backscatter(rng, ctx, ground, pix, g, p)
    del pix
    no2, column_true = targets.no2_column(rng, ctx, urban, size, p)
    tgt = targets.ground_no2(rng, ctx, urban, column_true, p)
    out = {
        "s2": s2, "s1": s1, "dem": dem[:, None], "landcover": world.aux_landcover(rng, mask, p),
        "weather": wx, "season": season_vector(ctx["doy"]), "no2": no2, "mask": mask,
        "label": lab["label"], "multilabel": lab["multilabel"], "cover": lab["cover"], **tgt,
        "region": ctx["region"], "doy": ctx["doy"], "cloud": cmask, "cloud_fraction": cloud_fraction,
    }
    out.update(ctx["extra"])
    return out


def workers() -> int:
    """Chunks simulated in parallel threads (numpy releases the GIL): ``$EOREPS_SIMEO_THREADS`` or
    ``min(2, cpus)`` (the project is sized for 2 cores). Results do not depend on it."""
    env = os.environ.get("EOREPS_SIMEO_THREADS")
    return max(1, int(env)) if env else max(1, min(2, os.cpu_count() or 1))


def run_chunks(n: int, chunk: int, seed: int, stream: str, fn) -> dict[str, np.ndarray]:
    """Call ``fn(rng, m)`` on chunks of at most ``chunk`` samples, each with its own seeded generator
    (so the output depends on ``seed`` and ``n`` only, not on threads), and concatenate the results."""
    if n == 0:  # empty arrays with the right trailing shapes and dtypes
        return {k: v[:0] for k, v in fn(chunk_rng(seed, stream, 0), 1).items()}
    starts = list(range(0, n, chunk))
    jobs = [(chunk_rng(seed, stream, i), min(chunk, n - s)) for i, s in enumerate(starts)]
    # Chunks are written straight into preallocated outputs rather than concatenated at the end: on
    # VMs that hand freed memory back to the host, first-touching a page costs far more than filling
    # it, and concatenation would touch the whole output twice (measured: 13 of 45 s for 10k patches).
    first = fn(*jobs[0])
    out = {k: np.empty((n, *v.shape[1:]), v.dtype) for k, v in first.items()}

    def put(i: int, part: dict[str, np.ndarray]) -> None:
        for k, v in part.items():
            out[k][starts[i]:starts[i] + len(v)] = v

    put(0, first)
    del first
    nw = min(workers(), len(jobs) - 1)
    if nw > 1:
        with ThreadPoolExecutor(nw) as pool:
            for i, part in enumerate(pool.map(lambda job: fn(*job), jobs[1:]), 1):
                put(i, part)
    else:
        for i, job in enumerate(jobs[1:], 1):
            put(i, fn(*job))
    return out


def assign_splits(region: np.ndarray, seed: int, p: SimEOParams) -> np.ndarray:
    """Split codes (n,) int8 into :data:`SPLITS`: the shifted region -> ``shifted``; the others are
    shuffled and cut by ``split_fractions`` into train / val / test."""
    split = np.full(len(region), SPLITS.index("shifted"), dtype=np.int8)
    idx = np.flatnonzero(region != p.shifted_region)
    idx = idx[chunk_rng(seed, "splits", 0).permutation(len(idx))]
    n_train = int(round(p.split_fractions[0] * len(idx)))
    n_val = int(round(p.split_fractions[1] * len(idx)))
    split[idx[:n_train]] = 0
    split[idx[n_train:n_train + n_val]] = 1
    split[idx[n_train + n_val:]] = 2
    return split


def generate_patches(n: int, seed: int = 0, params: SimEOParams | None = None) -> dict[str, np.ndarray]:
    """Generate ``n`` co-registered SimEO patches (synthetic data), deterministic from ``seed``.

    Returns (S = ``params.patch_size``, K = 8 classes):

    ==================  ====================  ==========================================================
    key                 shape, dtype          meaning
    ==================  ====================  ==========================================================
    ``s2``              (n, 12, S, S) f32     S2 L2A reflectance x1e4 (B01..B12 w/o B10), NaN = no data
    ``s1``              (n, 2, S, S) f32      S1 sigma0 VV, VH in dB (speckled), NaN = no data
    ``dem``             (n, 1, S, S) f32      elevation, m
    ``landcover``       (n, 1, S, S) int64    auxiliary, coarser and noisy land-cover map (not ``mask``)
    ``weather``         (n, 3) f32            temperature deg C, relative humidity %, wind m/s
    ``season``          (n, 2) f32            sin, cos of 2 pi doy / 365.25
    ``no2``             (n, 1, S, S) f32      coarse NO2 column, umol/m^2
    ``mask``            (n, S, S) int64       true land-cover classes
    ``label``           (n,) int64            dominant class of ``mask``
    ``multilabel``      (n, K) f32            classes with cover >= ``multilabel_threshold``
    ``cover``           (n, K) f32            class fractions of ``mask``
    ``target``          (n,) f32              ground-level NO2-like target, ug/m^3 (noisy)
    ``target_mean``     (n,) f32              its noise-free mean
    ``target_std``      (n,) f32              its true heteroscedastic noise std
    ``region``          (n,) int64            index into ``SIMEO_REGIONS``
    ``doy``             (n,) int64            day of year 1..365
    ``cloud``           (n, S, S) bool        cloud-or-shadow mask (S2 only)
    ``cloud_fraction``  (n,) f32              mean of ``cloud``
    ``split``           (n,) int8             index into ``SPLITS`` (train, val, test, shifted)
    ==================  ====================  ==========================================================
    """
    p = params or SimEOParams()
    out = run_chunks(n, CHUNK, seed, "patches", lambda rng, m: simulate(rng, m, p.patch_size, p))
    out["split"] = assign_splits(out["region"], seed, p)
    return out


def generate_scenes(
    n: int, size: int = 256, seed: int = 0, params: SimEOParams | None = None
) -> dict[str, np.ndarray]:
    """Generate ``n`` large SimEO scenes ``size x size`` px (same keys and units as patches, no ``split``).

    Scenes mix more classes (``scene_concentration``) and add large-scale land-cover zones
    (``scene_zone_corr_px``), so neighbouring tiles of a scene are similar and distant ones differ
    (the premise of Tile2Vec). Scenes come from in-distribution regions only.
    """
    p = params or SimEOParams()
    regions = np.asarray([r for r in range(len(p.region_weights)) if r != p.shifted_region])
    w = np.asarray(p.region_weights)[regions]

    def one(rng: np.random.Generator, m: int) -> dict[str, np.ndarray]:
        reg = rng.choice(regions, size=m, p=w / w.sum())
        return simulate(rng, m, size, p, scene=True, region=reg)

    return run_chunks(n, max(1, (CHUNK * p.patch_size**2) // (size * size)), seed, "scenes", one)
