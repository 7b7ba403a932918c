"""Torch datasets over SimEO, eoreps' built-in **synthetic** data (see :mod:`eoreps.data.simeo`).

* :class:`SimEODataset` -- co-registered multimodal patches with labels for every task; splits
  ``train`` / ``val`` / ``test`` (one distribution), ``shifted`` (a held-out region with other class
  priors and climate) and ``all``.
* :class:`SimEOPowerPlants` -- the multi-task power-plant set (plume mask, power, fuel).
* :class:`SimEOScenes` -- whole large scenes; :class:`SimEOTriplets` -- Tile2Vec triplets cut from them.

With ``root=None`` the data are generated once (deterministically from ``n``, ``seed`` and ``params``)
into the cache ``$EOREPS_CACHE/simeo`` or ``~/.cache/eoreps/simeo`` and memory-mapped from there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eoreps.data.datasets.base import EODataset, Sample
from eoreps.data.modalities import get_modality
from eoreps.data.simeo import FUEL_TYPES, SIMEO_CLASSES, SPLITS, SimEOParams, load_simeo
from eoreps.data.simeo.io import cached_simeo
from eoreps.errors import ConfigError

PATCH_MODALITIES = ("s2", "s1", "dem", "landcover", "weather", "season", "no2")
"""Input modalities of SimEO patches and scenes."""
PLANT_MODALITIES = ("s2", "s1", "dem", "weather", "season")
"""Input modalities of the power-plant set."""

DEFAULT_N = 6000
"""Patches generated for ``SimEODataset(root=None)`` (all splits together; ~1 min on 2 cores)."""
DEFAULT_PLANTS = 1500
DEFAULT_SCENES = 32


def _modalities(chosen: Sequence[str] | None, available: tuple[str, ...]) -> tuple[str, ...]:
    mods = tuple(chosen) if chosen else available
    for m in mods:
        if m not in available:
            raise ConfigError(f"SimEO has no modality '{m}'; choose from: {', '.join(available)}")
    return mods


def _check_root_args(root: Any, **given: Any) -> None:
    if root is not None:
        set_args = [k for k, v in given.items() if v is not None]
        if set_args:
            raise ConfigError(f"{', '.join(set_args)} only apply when root=None (generating); {root} was "
                              "generated with the values stored in its meta.json")


def _split_rows(split_codes: np.ndarray, split: str, allowed: tuple[str, ...]) -> np.ndarray:
    if split == "all":
        return np.arange(len(split_codes))
    if split not in allowed:
        raise ConfigError(f"unknown SimEO split '{split}'; choose one of: {', '.join(('all', *allowed))}")
    return np.flatnonzero(np.asarray(split_codes) == SPLITS.index(split))


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a))  # copy out of the read-only memory map


class _SimEORows(EODataset):
    """What the SimEO parts with one row per sample share: the arguments, loading and ``split`` rows.

    Subclasses name the ``_part`` (a folder of :func:`eoreps.data.simeo.load_simeo`), its ``_available``
    modalities and ``_splits``, and implement :meth:`_generate`.
    """

    _part = ""
    _available: tuple[str, ...] = ()
    _splits: tuple[str, ...] = ()

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "train",
        modalities: Sequence[str] | None = None,
        n: int | None = None,
        seed: int | None = None,
        params: SimEOParams | None = None,
    ) -> None:
        _check_root_args(root, n=n, seed=seed, params=params)
        self._validate()
        self.root = Path(root) if root is not None else self._generate(n, seed or 0, params)
        self.arrays, self.meta = load_simeo(self.root, self._part)
        self.modalities = _modalities(modalities, self._available)
        self.band_names = {m: get_modality(m).bands for m in self.modalities}
        self.split = split
        self.indices = _split_rows(self.arrays["split"], split, self._splits)

    def _validate(self) -> None:
        """Checks of a subclass's own arguments, run before any data are generated."""

    def _generate(self, n: int | None, seed: int, params: SimEOParams | None) -> Path:
        """The cached folder generated for ``root=None``."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.indices)


class SimEODataset(_SimEORows):
    """SimEO patches (synthetic). ``len`` = patches in ``split``.

    Args:
        root: a folder written by :func:`eoreps.data.simeo.write_simeo`; ``None`` generates (and caches).
        split: ``"train"``, ``"val"``, ``"test"``, ``"shifted"`` or ``"all"``.
        modalities: subset of :data:`PATCH_MODALITIES` (default: all).
        n: patches to generate when ``root`` is None (default :data:`DEFAULT_N`, across all splits).
        seed: generator seed when ``root`` is None.
        params: :class:`SimEOParams` when ``root`` is None.
        task: ``"single"`` (``label_matrix`` gives dominant classes) or ``"multi"`` (multi-hot).

    Samples (S = patch size, K = 8): one tensor per requested modality (``s2`` (12, S, S) float32
    reflectance x1e4 with NaN no-data, ``s1`` (2, S, S) dB, ``dem`` (1, S, S) m, ``landcover``
    (1, S, S) int64, ``weather`` (3,), ``season`` (2,), ``no2`` (1, S, S)), ``label`` () int64,
    ``multilabel`` (K,) float32, ``mask`` (S, S) int64, ``target`` () float32 NO2-like,
    ``target_std`` () float32 its true noise std, ``region`` () int64, ``doy`` () int64,
    ``cloud`` (S, S) bool, ``id`` str.
    """

    synthetic = True
    classes = SIMEO_CLASSES
    _part, _available, _splits = "patches", PATCH_MODALITIES, SPLITS

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "train",
        modalities: Sequence[str] | None = None,
        n: int | None = None,
        seed: int | None = None,
        params: SimEOParams | None = None,
        task: str = "single",
    ) -> None:
        self.task = task
        super().__init__(root, split, modalities, n, seed, params)

    def _validate(self) -> None:
        if self.task not in ("single", "multi"):
            raise ConfigError(f"SimEODataset task must be 'single' or 'multi', got '{self.task}'")

    def _generate(self, n: int | None, seed: int, params: SimEOParams | None) -> Path:
        return cached_simeo(DEFAULT_N if n is None else n, seed, params)

    def __getitem__(self, index: int) -> Sample:
        j = int(self.indices[index])
        a = self.arrays
        sample: Sample = {m: _t(a[m][j]) for m in self.modalities}
        for k in ("label", "region", "doy"):
            sample[k] = torch.tensor(int(a[k][j]), dtype=torch.int64)
        for k in ("target", "target_std"):
            sample[k] = torch.tensor(float(a[k][j]), dtype=torch.float32)
        sample["multilabel"] = _t(a["multilabel"][j])
        sample["mask"] = _t(a["mask"][j])
        sample["cloud"] = _t(a["cloud"][j])
        sample["id"] = f"simeo-p{j:06d}"
        return sample

    def label_matrix(self) -> torch.Tensor:
        """``(N,)`` int64 dominant classes (task ``single``) or ``(N, 8)`` float32 multi-hot (``multi``)."""
        if self.task == "single":
            return torch.from_numpy(np.asarray(self.arrays["label"])[self.indices].astype(np.int64))
        return torch.from_numpy(np.asarray(self.arrays["multilabel"])[self.indices].astype(np.float32))


class SimEOPowerPlants(_SimEORows):
    """SimEO power plants (synthetic) for multi-task learning; ``classes`` are the fuel types.

    Args: as :class:`SimEODataset` (``n`` default :data:`DEFAULT_PLANTS`); splits ``train``, ``val``,
    ``test``, ``all``; modalities from :data:`PLANT_MODALITIES`.

    Samples (P = ``params.plant_size``): modality tensors, ``mask`` (P, P) int64 plume 0/1 (same as
    ``plume``), ``target`` () float32 power in MW (0 when off; same as ``power``), ``label`` () int64
    fuel (same as ``fuel``), ``capacity`` () MW, ``landcover_mask`` (P, P) int64 true land cover,
    ``cloud`` (P, P) bool, ``region``, ``doy``, ``id``.
    """

    synthetic = True
    classes = FUEL_TYPES
    task = "single"
    _part, _available, _splits = "power_plants", PLANT_MODALITIES, ("train", "val", "test")

    def _generate(self, n: int | None, seed: int, params: SimEOParams | None) -> Path:
        return cached_simeo(0, seed, params, power_plants=DEFAULT_PLANTS if n is None else n)

    def __getitem__(self, index: int) -> Sample:
        j = int(self.indices[index])
        a = self.arrays
        sample: Sample = {m: _t(a[m][j]) for m in self.modalities}
        plume = _t(a["plume"][j])
        power = torch.tensor(float(a["power"][j]), dtype=torch.float32)
        fuel = torch.tensor(int(a["fuel"][j]), dtype=torch.int64)
        sample.update({"plume": plume, "mask": plume.clone(), "power": power, "target": power.clone(),
                       "fuel": fuel, "label": fuel.clone(),
                       "capacity": torch.tensor(float(a["capacity"][j]), dtype=torch.float32),
                       "landcover_mask": _t(a["mask"][j]), "cloud": _t(a["cloud"][j]),
                       "region": torch.tensor(int(a["region"][j])), "doy": torch.tensor(int(a["doy"][j])),
                       "id": f"simeo-pp{j:06d}"})
        return sample

    def label_matrix(self) -> torch.Tensor:
        """``(N,)`` int64 fuel classes."""
        return torch.from_numpy(np.asarray(self.arrays["fuel"])[self.indices].astype(np.int64))


class SimEOScenes(EODataset):
    """Whole SimEO scenes (synthetic), ``size x size`` px, for spatial sampling.

    Args: ``root`` (a folder with a ``scenes`` part) or ``n`` scenes (default :data:`DEFAULT_SCENES`)
    of side ``size`` generated with ``seed`` / ``params``; ``modalities`` from :data:`PATCH_MODALITIES`.
    Samples: modality tensors (C, size, size) / (C,), ``mask`` (size, size), ``cloud``, ``label``
    (dominant class), ``multilabel``, ``region``, ``doy``, ``id``.
    """

    synthetic = True
    classes = SIMEO_CLASSES
    task = "single"

    def __init__(self, root: str | Path | None = None, modalities: Sequence[str] | None = None,
                 n: int | None = None, size: int | None = None, seed: int | None = None,
                 params: SimEOParams | None = None) -> None:
        _check_root_args(root, n=n, size=size, seed=seed, params=params)
        self.root = (Path(root) if root is not None
                     else cached_simeo(0, seed or 0, params, scenes=DEFAULT_SCENES if n is None else n,
                                       scene_size=256 if size is None else size))
        self.arrays, self.meta = load_simeo(self.root, "scenes")
        self.modalities = _modalities(modalities, PATCH_MODALITIES)
        self.band_names = {m: get_modality(m).bands for m in self.modalities}
        self.size = int(self.arrays["mask"].shape[-1])

    def __len__(self) -> int:
        return int(self.arrays["mask"].shape[0])

    def __getitem__(self, index: int) -> Sample:
        return self.tile(index, 0, 0, self.size)

    def tile(self, scene: int, y: int, x: int, tile: int) -> Sample:
        """The ``tile x tile`` window at row ``y``, column ``x`` of ``scene`` as a sample dict."""
        a, win = self.arrays, (slice(y, y + tile), slice(x, x + tile))
        sample: Sample = {}
        for m in self.modalities:
            v = a[m][scene]
            sample[m] = _t(v[(slice(None), *win)] if v.ndim == 3 else v)
        mask = np.array(a["mask"][scene][win])
        cover = np.bincount(mask.ravel(), minlength=len(SIMEO_CLASSES)) / mask.size
        thr = float(self.meta["params"]["multilabel_threshold"])
        sample.update(
            {
                "mask": torch.from_numpy(mask),
                "cloud": _t(a["cloud"][scene][win]),
                "label": torch.tensor(int(cover.argmax())),
                "multilabel": torch.from_numpy((cover >= thr).astype(np.float32)),
                "region": torch.tensor(int(a["region"][scene])),
                "doy": torch.tensor(int(a["doy"][scene])),
                "id": f"simeo-s{scene:06d}-y{y}-x{x}",
            }
        )
        return sample


class SimEOTriplets(EODataset):
    """Tile2Vec triplets (synthetic) cut from :class:`SimEOScenes`.

    Each item is a nested dict ``{"anchor": sample, "neighbor": sample, "distant": sample}`` (the
    default collate batches nested dicts, so ``batch["anchor"]["s2"]`` is ``(B, 12, T, T)``). The
    neighbour is a tile whose top-left corner lies within ``neighborhood`` px of the anchor's (but not
    the same tile); the distant tile comes from another scene (the same scene only if there is one).
    Tile positions are drawn once from ``seed``, so the dataset is deterministic.

    Args:
        n_triplets: number of triplets.
        tile_size: tile side T in px.
        neighborhood: largest anchor-neighbour offset per axis, px.
        scenes: a :class:`SimEOScenes`; default ``SimEOScenes(root, n=n_scenes, size=scene_size, ...)``.
        root, n_scenes, scene_size, seed, params, modalities: as for :class:`SimEOScenes`.
    """

    synthetic = True
    classes = SIMEO_CLASSES
    task = "none"

    def __init__(
        self,
        n_triplets: int = 10000,
        tile_size: int = 32,
        neighborhood: int = 32,
        scenes: SimEOScenes | None = None,
        root: str | Path | None = None,
        n_scenes: int | None = None,
        scene_size: int | None = None,
        seed: int = 0,
        params: SimEOParams | None = None,
        modalities: Sequence[str] | None = None,
    ) -> None:
        if scenes is None:
            scenes = SimEOScenes(root, modalities=modalities, n=n_scenes, size=scene_size,
                                 seed=None if root is not None else seed, params=params)
        self.scenes = scenes
        self.modalities, self.band_names = scenes.modalities, scenes.band_names
        s, t = scenes.size, tile_size
        if t > s or neighborhood < 1:
            raise ConfigError(f"tile_size {t} must be <= scene size {s} and neighborhood >= 1")
        rng = np.random.default_rng([seed, 7])
        n, ns = n_triplets, len(scenes)
        scene = rng.integers(0, ns, n)
        ay, ax = rng.integers(0, s - t + 1, (2, n))
        dy, dx = rng.integers(-neighborhood, neighborhood + 1, (2, n))
        same = (dy == 0) & (dx == 0)
        dx[same] = np.where(ax[same] + 1 <= s - t, 1, -1)  # never the anchor itself
        ny, nx = np.clip(ay + dy, 0, s - t), np.clip(ax + dx, 0, s - t)
        other = (scene + rng.integers(1, ns, n)) % ns if ns > 1 else scene
        fy, fx = rng.integers(0, s - t + 1, (2, n))
        self.tile_size = t
        self.plan = np.stack([scene, ay, ax, ny, nx, other, fy, fx], 1)

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, index: int) -> dict[str, Sample]:
        sc, ay, ax, ny, nx, other, fy, fx = (int(v) for v in self.plan[index])
        t = self.tile_size
        return {"anchor": self.scenes.tile(sc, ay, ax, t), "neighbor": self.scenes.tile(sc, ny, nx, t),
                "distant": self.scenes.tile(other, fy, fx, t)}
