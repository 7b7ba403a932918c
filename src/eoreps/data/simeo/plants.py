"""SimEO power plants: a multi-task set (plume segmentation, power regression, fuel classification).

Mimics Sentinel-2 views of thermal power plants: wet cooling towers emit condensation plumes whose
length grows with the power generated and with cold, humid weather; the site's look depends on the
fuel (coal and lignite stockpiles, a lignite open-pit mine next door, oil tanks, compact gas plants).
"""

from __future__ import annotations

import numpy as np

from eoreps.data.simeo.fields import gaussian_field
from eoreps.data.simeo.generate import CHUNK, assign_splits, run_chunks, simulate
from eoreps.data.simeo.params import FUEL_TYPES, SIMEO_CLASSES, SimEOParams
from eoreps.data.simeo.world import Grid

PLANT_KEYS = ("s2", "s1", "dem", "weather", "season", "mask", "cloud", "plume", "power", "capacity", "fuel",
              "region", "doy", "split")
"""Keys returned by :func:`generate_power_plants`."""

_URBAN, _BARREN = SIMEO_CLASSES.index("urban"), SIMEO_CLASSES.index("barren")
_COAL, _LIGNITE, _GAS, _OIL = (FUEL_TYPES.index(f) for f in ("coal", "lignite", "gas", "oil"))


def _rect(g: Grid, cy: np.ndarray, cx: np.ndarray, half: np.ndarray) -> np.ndarray:
    """(n, G, G) bool squares of half-side ``half`` centred at (cy, cx)."""
    ax = np.arange(g.G, dtype=np.float32)
    return ((np.abs(ax[None, :, None] - cy[:, None, None]) <= half[:, None, None])
            & (np.abs(ax[None, None, :] - cx[:, None, None]) <= half[:, None, None]))


def _edit(p: SimEOParams):
    def edit(rng, ctx, ground, g, stage, refl=None):
        n = len(ctx["region"])
        if stage == "ground":
            w = np.asarray(p.fuel_weights, np.float64)
            fuel = rng.choice(len(FUEL_TYPES), size=n, p=w / w.sum())
            cap = (np.asarray(p.fuel_capacity_mw)[fuel] * np.exp(p.capacity_sd * rng.standard_normal(n)))
            cf_mean = np.asarray(p.fuel_capacity_factor)[fuel]
            cf = rng.beta(cf_mean * 8, (1 - cf_mean) * 8)
            off = rng.random(n) < np.asarray(p.fuel_off_prob)[fuel]
            power = np.where(off, 0.0, cap * cf)
            wet = rng.random(n) < np.asarray(p.fuel_wet_cooling_prob)[fuel]
            jit = g.size / 6
            cy = g.off + g.size / 2 + rng.uniform(-jit, jit, n)
            cx = g.off + g.size / 2 + rng.uniform(-jit, jit, n)
            half = np.asarray(p.site_size_px)[fuel] / 2 * rng.uniform(0.8, 1.2, n)
            mine_side = rng.integers(0, 4, n)
            my = cy + np.where(mine_side == 0, 2.2, np.where(mine_side == 1, -2.2, 0.0)) * half
            mx = cx + np.where(mine_side == 2, 2.2, np.where(mine_side == 3, -2.2, 0.0)) * half
            mine = _rect(g, my, mx, 1.4 * half) & (fuel == _LIGNITE)[:, None, None]
            ground["mask"][mine] = _BARREN
            ground["mask"][_rect(g, cy, cx, half)] = _URBAN
            ctx["plant"] = {"fuel": fuel, "capacity": cap, "power": power, "wet": wet, "cy": cy, "cx": cx,
                            "half": half}
            return
        pl = ctx["plant"]
        fuel, cy, cx, half = pl["fuel"], pl["cy"], pl["cx"], pl["half"]
        pile = (
            _rect(g, cy + half / 2, cx - half / 2, half / 3) & np.isin(fuel, (_COAL, _LIGNITE))[:, None, None]
        )
        refl *= np.where(pile, np.float32(p.coal_pile_reflectance) / np.maximum(refl.mean(1), 1.0), 1.0)[
            :, None
        ]
        ax = np.arange(g.G, dtype=np.float32)
        tanks = np.zeros((n, g.G, g.G), bool)
        for dy, dx in ((-0.5, 0.5), (0.5, 0.5), (-0.5, -0.2)):
            r2 = (ax[None, :, None] - (cy + dy * half)[:, None, None]) ** 2 + (
                ax[None, None, :] - (cx + dx * half)[:, None, None]
            ) ** 2
            tanks |= r2 <= 4.0
        tanks &= (fuel == _OIL)[:, None, None]
        refl[np.broadcast_to(tanks[:, None], refl.shape)] = 3800.0
        # condensation plume downwind of the stack (site centre)
        temp, hum = ctx["weather"][:, 0], ctx["weather"][:, 1]
        cond = np.clip((hum - 30.0) / 50.0, 0.05, 1.3) * np.clip(1.0 - (temp - 5.0) / 40.0, 0.3, 1.5)
        length = p.plume_length_px * np.sqrt(pl["power"] / 100.0) * cond * pl["wet"]
        theta = rng.uniform(0, 2 * np.pi, n)
        yy, xx = ax[None, :, None] - cy[:, None, None], ax[None, None, :] - cx[:, None, None]
        along = xx * np.cos(theta)[:, None, None] + yy * np.sin(theta)[:, None, None]
        perp = -xx * np.sin(theta)[:, None, None] + yy * np.cos(theta)[:, None, None]
        width = p.plume_width_px + p.plume_spread * np.maximum(along, 0)
        lum = np.maximum(length, 1e-3)[:, None, None]
        alpha = (p.plume_opacity * np.exp(-np.maximum(along, 0) / lum) * np.exp(-0.5 * (perp / width) ** 2)
                 * (1 - np.exp(-np.maximum(along + 1.0, 0) / 1.5)))
        alpha *= np.clip(1 + 0.3 * gaussian_field(rng, (n, g.G, g.G), 2.0), 0, 1.5)
        alpha = np.clip(np.where(length[:, None, None] > 0.5, alpha, 0.0), 0, 1).astype(np.float32)
        spec = np.asarray(p.cloud_spectrum, np.float32)[None, :, None, None] * 0.9
        refl *= 1 - alpha[:, None]
        refl += alpha[:, None] * spec
        ctx["extra"].update({
            "plume": np.ascontiguousarray(g.crop(alpha > p.plume_mask_threshold)).astype(np.int64),
            "power": pl["power"].astype(np.float32), "capacity": pl["capacity"].astype(np.float32),
            "fuel": fuel.astype(np.int64),
        })

    return edit


def generate_power_plants(n: int, seed: int = 0, params: SimEOParams | None = None) -> dict[str, np.ndarray]:
    """Generate ``n`` power-plant patches (synthetic data), ``params.plant_size`` px square.

    Returns :data:`PLANT_KEYS`: ``s2`` (n, 12, P, P), ``s1`` (n, 2, P, P), ``dem`` (n, 1, P, P),
    ``weather`` (n, 3), ``season`` (n, 2), ``mask`` (n, P, P) land cover (site = urban),
    ``cloud`` (n, P, P) bool natural clouds, ``plume`` (n, P, P) int64 0/1, ``power`` (n,) MW float32
    (0 when off), ``capacity`` (n,) MW, ``fuel`` (n,) int64 index into :data:`FUEL_TYPES`, ``region``,
    ``doy``, ``split`` (train/val/test codes only; plants come from in-distribution regions).
    """
    p = params or SimEOParams()
    regions = np.asarray([r for r in range(len(p.region_weights)) if r != p.shifted_region])
    w = np.asarray(p.region_weights)[regions]
    edit = _edit(p)

    def one(rng: np.random.Generator, m: int) -> dict[str, np.ndarray]:
        reg = rng.choice(regions, size=m, p=w / w.sum())
        out = simulate(rng, m, p.plant_size, p, region=reg, edit=edit, cloud_factor=p.plant_cloud_factor)
        return {k: out[k] for k in PLANT_KEYS if k != "split"}

    out = run_chunks(n, max(1, (CHUNK * p.patch_size**2) // p.plant_size**2), seed, "plants", one)
    out["split"] = assign_splits(out["region"], seed, p)
    return out
