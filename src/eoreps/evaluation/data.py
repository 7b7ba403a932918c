"""The evaluation data: train / val / test splits held in memory as tensors, with their targets.

Evaluation runs many cells (methods x protocols x label fractions x seeds) over the same small data, so
the splits are read once into memory (physical units, optionally resized) and every cell indexes them.

* :func:`load_eval_data` reads ``"simeo"`` (the built-in synthetic data, generated once into the cache)
  or any dataset path :func:`eoreps.data.formats.open_dataset` recognises (BigEarthNet folders, the
  ``.npz`` pairs, reBEN, GeoTIFF folders): by default from a pack (``loader="stream"``: the source is
  packed once into the cache), where a per-split ``limits`` choice is drawn from ``labels.parquet``
  so only the chosen images are read; ``loader="memory"`` reads the source directly (same samples).
* :class:`EvalData` holds the three splits and the task, computes training-split band statistics
  (:func:`eoreps.data.stats.compute_stats`) and normalised copies of the inputs
  (:class:`eoreps.data.stats.Normalizer`), and draws the nested stratified label-fraction subsets of
  the training split (:func:`eoreps.data.splits.label_fraction_indices`): the same subsets for every
  method of a comparison, because they depend only on the training labels and the seed.

Shapes (``N`` samples of a split): image modalities ``(N, C, H, W)`` float32, vector modalities
``(N, C)``; targets ``(N,)`` int64 (classify), ``(N, K)`` float32 (multilabel), ``(N, H, W)`` int64
(segment, ``IGNORE_INDEX`` = unlabelled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from eoreps.data.crops import centre_crop
from eoreps.data.datasets.base import IGNORE_INDEX, describe_dataset, task_classes
from eoreps.data.modalities import MODALITIES
from eoreps.data.pack_cache import check_loader, packed_source
from eoreps.data.stats import BandStats, Normalizer, compute_stats
from eoreps.digest import bytes_digest, digest
from eoreps.errors import ConfigError, DataError
from eoreps.models.card import BackboneCard
from eoreps.tasks.spec import TaskSpec

TASKS = ("classify", "multilabel", "segment")
SPLIT_NAMES = ("train", "val", "test")
_TARGET_KEY = {"classify": "label", "multilabel": "multilabel", "segment": "mask"}


@dataclass
class EvalSplit:
    """One split in memory.

    Attributes:
        inputs: modality -> ``(N, C, H, W)`` / ``(N, C)`` tensor in physical units (NaN = no data).
        target: ``(N,)`` int64, ``(N, K)`` float32 or ``(N, H, W)`` int64 (see the module docstring).
        strata: ``(N,)`` class indices or ``(N, K)`` multi-hot used to stratify label fractions.
        ids: sample identifiers.
    """

    inputs: dict[str, torch.Tensor]
    target: torch.Tensor
    strata: np.ndarray
    ids: list[str]

    def __len__(self) -> int:
        return int(self.target.shape[0])


class _Samples:
    """A split seen as a map-style dataset of sample dicts (for :func:`compute_stats`)."""

    def __init__(self, inputs: dict[str, torch.Tensor], modalities: Sequence[str], band_names: dict) -> None:
        self.inputs = inputs
        self.modalities = tuple(modalities)
        self.band_names = band_names

    def __len__(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {m: self.inputs[m][i] for m in self.modalities}


@dataclass
class EvalData:
    """Train / val / test splits of one dataset and one task, in memory.

    Attributes:
        name: the data spec it came from (``"simeo"`` or a path).
        task: the task (:class:`eoreps.tasks.spec.TaskSpec`).
        classes: class names.
        modalities: the modalities loaded (keys of every split's ``inputs``).
        splits: ``{"train" | "val" | "test": EvalSplit}``.
        band_names: modality -> band names.
        synthetic: True for SimEO (reports must say so).
        fingerprint: what identifies this data (used in feature-cache keys).
    """

    name: str
    task: TaskSpec
    classes: tuple[str, ...]
    modalities: tuple[str, ...]
    splits: dict[str, EvalSplit]
    band_names: dict[str, tuple[str, ...]] = field(default_factory=dict)
    synthetic: bool = False
    fingerprint: dict[str, Any] = field(default_factory=dict)
    _stats: BandStats | None = field(default=None, repr=False)
    _normalized: dict[tuple[str, str], dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)

    @property
    def grid_size(self) -> tuple[int, int]:
        """``(H, W)`` of the image modalities (the segmentation output size)."""
        for x in self.splits["train"].inputs.values():
            if x.dim() == 4:
                return int(x.shape[-2]), int(x.shape[-1])
        raise DataError(
            f"{self.name}: no image modality among {', '.join(self.modalities)}; add one (e.g. s2)"
        )

    def channels(self, modality: str) -> int:
        """Channels the model sees for ``modality`` (one-hot classes for categorical ones)."""
        mod = MODALITIES.get(modality)
        if mod is not None and mod.categorical:
            return int(mod.num_classes or 1)
        return int(self.splits["train"].inputs[modality].shape[1])

    def train_stats(self) -> BandStats:
        """Per-band mean / std of the training split (non-categorical modalities), computed once."""
        if self._stats is None:
            mods = [m for m in self.modalities if not (m in MODALITIES and MODALITIES[m].categorical)]
            train = self.splits["train"]
            self._stats = compute_stats(_Samples(train.inputs, mods, self.band_names), mods)
        return self._stats

    def normalized(self, split: str, stats: BandStats | None = None, keep: bool = True
                   ) -> dict[str, torch.Tensor]:
        """Inputs of ``split`` normalised with ``stats`` (default: the training split's), NaN -> 0.

        Categorical modalities are one-hot encoded. Cached per (split, statistics); ``keep=False`` returns
        the cached inputs when there are some but does not cache new ones (a caller that needs each split
        once, so the normalised copy is freed when it drops it: frozen-feature extraction).
        """
        stats = stats or self.train_stats()
        key = (split, stats_digest(stats, self.modalities))
        if key in self._normalized:
            return self._normalized[key]
        norm = Normalizer(stats, fallback=False)
        out = norm({m: self.splits[split].inputs[m] for m in self.modalities})
        normalized = {m: out[m].contiguous() for m in self.modalities}
        if keep:
            self._normalized[key] = normalized
        return normalized

    def fraction_indices(self, fractions: Sequence[float], seed: int) -> dict[float, np.ndarray]:
        """Nested stratified subsets of the training split, ``{fraction: sorted indices}``, fixed per seed."""
        from eoreps.data.splits import label_fraction_indices

        return label_fraction_indices(self.splits["train"].strata, fractions, seed)


def stats_digest(stats: BandStats, modalities: Sequence[str]) -> str:
    """A short hash of the statistics of ``modalities`` (part of cache keys)."""
    d = {m: [list(stats.mean[m]), list(stats.std[m])] for m in modalities if m in stats.mean}
    return digest(d)


def card_stats(card: BackboneCard | None, modalities: Sequence[str]) -> BandStats | None:
    """The normalisation a backbone was trained with, from its card (``{"s2": {"mean", "std"}}``), or None."""
    norm = card.normalization if card is not None else None
    mean, std = {}, {}
    for m in modalities:
        s = (norm or {}).get(m)
        if s is not None:  # the card checked that it has mean and std
            mean[m] = tuple(float(v) for v in s["mean"])
            std[m] = tuple(float(v) for v in s["std"])
    return BandStats(mean=mean, std=std) if mean else None


# ------------------------------------------------------------------------------------------ loading
def _resize(x: torch.Tensor, size: int | None, categorical: bool) -> torch.Tensor:
    """Resize ``(N, C, H, W)`` (or a mask ``(N, H, W)``) to ``size x size``; vectors pass through."""
    if size is None or x.dim() < 3 or tuple(x.shape[-2:]) == (size, size):
        return x
    if x.dim() == 3:  # mask
        return F.interpolate(x[:, None].float(), size=(size, size), mode="nearest")[:, 0].to(x.dtype)
    if categorical:
        return F.interpolate(x.float(), size=(size, size), mode="nearest").to(x.dtype)
    # NaN-aware area/bilinear resize: average finite values only, NaN where none was finite
    finite = torch.isfinite(x)
    xz = torch.where(finite, x, torch.zeros_like(x)).float()
    mode = "area" if x.shape[-1] > size else "bilinear"
    kw: dict[str, Any] = {} if mode == "area" else {"align_corners": False}
    num = F.interpolate(xz, size=(size, size), mode=mode, **kw)
    den = F.interpolate(finite.float(), size=(size, size), mode=mode, **kw)
    out = num / den.clamp_min(1e-6)
    return torch.where(den > 1e-6, out, torch.full_like(out, float("nan")))


def _strata(task: str, label: np.ndarray | None, multilabel: np.ndarray | None, mask: np.ndarray | None,
            num_classes: int) -> np.ndarray:
    if task == "classify":
        assert label is not None
        return label.astype(np.int64)
    if task == "multilabel":
        assert multilabel is not None
        return multilabel > 0.5
    if label is not None:  # segmentation stratified by the dominant class where the data has one
        return label.astype(np.int64)
    assert mask is not None
    present = np.stack([(mask == c).reshape(len(mask), -1).any(1) for c in range(num_classes)], axis=1)
    return present


def _select(n: int, strata: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """All indices, or a stratified ``limit`` of them (a prefix of a stratified order)."""
    if limit is None or limit >= n:
        return np.arange(n)
    from eoreps.data.splits import stratified_order

    return np.sort(stratified_order(strata, seed)[:limit])


def _simeo_split(
    root: Path, split: str, modalities: Sequence[str], task: str
) -> tuple[dict[str, np.ndarray], list[str], dict]:
    from eoreps.data.simeo import load_simeo

    arrays, meta = load_simeo(root)
    codes = list(meta["splits"])
    rows = np.flatnonzero(np.asarray(arrays["split"]) == codes.index(split))
    out = {
        m: np.asarray(arrays[m][rows]) for m in modalities if m in arrays
    }  # the caller names a missing one
    for k in ("label", "multilabel", "mask"):
        out[k] = np.asarray(arrays[k][rows])
    ids = [f"simeo-p{i:06d}" for i in rows]
    return out, ids, meta


def _pack_selection(ds: Any, task: str, limit: int | None, seed: int) -> np.ndarray | None:
    """The stratified ``limit`` samples of a pack's split chosen from ``labels.parquet`` before any image is
    read (the choice :func:`_select` makes from the labels read with the images), or ``None``: no limit, not
    a pack, or its labels are not the task's (a single-label pack evaluated as multi-label)."""
    kind = {"classify": "single", "multilabel": "multi"}.get(task)
    packed = hasattr(ds, "labels_table")
    if limit is None or limit >= len(ds) or not packed or kind is None or ds.task != kind:
        return None
    y = ds.label_matrix().numpy()
    return _select(len(y), _strata(task, y, y, None, 0), limit, seed)


def _dataset_split(spec: str, split: str, modalities: Sequence[str], task: str, options: dict[str, Any],
                   seed: int, limit: int | None = None) -> tuple[dict[str, np.ndarray], list[str], Any]:
    from torch.utils.data import DataLoader, Subset

    from eoreps.data.formats import open_dataset

    ds = open_dataset(spec, split=split, modalities=list(modalities), run_seed=seed, **options)
    if len(ds) == 0:
        raise DataError(f"{spec}: split '{split}' is empty; the evaluation needs train, val and test samples")
    key = _TARGET_KEY[task]
    chosen = _pack_selection(ds, task, limit, seed)
    loader = DataLoader(ds if chosen is None else Subset(ds, chosen.tolist()), batch_size=32, shuffle=False,
                        num_workers=0)
    parts: dict[str, list[Any]] = {}
    ids: list[str] = []
    for batch in loader:
        if key not in batch:
            raise DataError(f"{spec}: samples have no '{key}', so task '{task}' is not available "
                            f"(keys: {', '.join(k for k in batch if not k.startswith('valid_'))}); "
                            "choose another task")
        for k in dict.fromkeys([*modalities, key, "label"]):  # key may be "label" itself
            if k in batch and isinstance(batch[k], torch.Tensor):
                parts.setdefault(k, []).append(batch[k].numpy())
        ids.extend(str(i) for i in batch.get("id", [""] * len(next(iter(batch.values())))))
    return {k: np.concatenate(v) for k, v in parts.items()}, ids, ds


def load_eval_data(
    data: str,
    task: str,
    modalities: Sequence[str],
    size: int | None = None,
    limits: dict[str, int] | None = None,
    simeo_n: int = 2000,
    seed: int = 0,
    options: dict[str, Any] | None = None,
    crop: int | None = None,
    loader: str = "stream",
) -> EvalData:
    """Read the train / val / test splits of ``data`` into memory.

    With ``loader="stream"`` (the default) the splits are read from a pack: ``data`` itself when it is one,
    else the cached pack of it (:func:`eoreps.data.pack_cache.packed_source`, packed once); the samples
    are the same as with ``loader="memory"``, which reads the source directly.

    Args:
        data: ``"simeo"`` (synthetic, ``simeo_n`` patches generated once into the cache) or a dataset path.
        task: ``"classify"``, ``"multilabel"`` or ``"segment"``.
        modalities: modalities to load, e.g. ``["s2", "s1"]``.
        size: resize image modalities (and masks) to ``size x size`` (``None``: keep).
        limits: at most this many samples per split (``{"train": 1000}``), a stratified choice.
        simeo_n: SimEO patches to generate (train / val / test / shifted by the SimEO split rules).
        seed: seed of the stratified choice under ``limits`` and of a dataset's automatic split.
        options: extra options for :func:`~eoreps.data.formats.open_dataset` (e.g. ``include_snow_cloud``,
            the GeoTIFF folder's ``split_ratios``, ``mask_classes``).
        crop: keep the centred ``crop x crop`` px of images and masks, before ``size`` (``None``: full
        patches).
        loader: ``"stream"`` or ``"memory"`` (see above).

    Raises:
        ConfigError: unknown task; DataError: the dataset lacks the task's target or a modality.
    """
    if task not in TASKS:
        from eoreps.errors import unknown_name

        raise unknown_name("task", task, TASKS)
    if not modalities:
        raise ConfigError("no modalities given; pass e.g. modalities=s2,s1")
    if crop is not None and crop < 1:
        raise ConfigError(f"crop must be >= 1 px (or unset for the full patch), got {crop}")
    read, read_options = str(data), dict(options or {})
    if check_loader(loader) == "stream":
        src = packed_source(str(data), read_options, seed, tuple(modalities), simeo_n=simeo_n)
        read, read_options = src.data, src.options
    mods = tuple(modalities)
    key = _TARGET_KEY[task]
    limits = dict(limits or {})
    fp: dict[str, Any] = {"data": str(data), "task": task, "modalities": list(mods), "size": size,
                          "limits": limits, "seed": seed, **({"crop": crop} if crop else {})}
    raw: dict[str, dict[str, np.ndarray]] = {}
    ids: dict[str, list[str]] = {}
    classes: tuple[str, ...]
    band_names: dict[str, tuple[str, ...]] = {}
    synthetic = False
    simeo_root: Path | None = None
    if str(data) == "simeo":
        fp["simeo_n"] = simeo_n
    if read == "simeo":
        from eoreps.data.simeo.io import cached_simeo

        simeo_root = cached_simeo(simeo_n, seed=0)
    elif Path(read).is_dir():
        from eoreps.data.simeo import is_simeo_folder

        if is_simeo_folder(read):
            simeo_root = Path(read)
    if simeo_root is not None:
        from eoreps.data.simeo import SIMEO_CLASSES

        for s in SPLIT_NAMES:
            arrays, ids[s], meta = _simeo_split(simeo_root, s, mods, task)
            missing = [m for m in mods if m not in arrays]
            if missing:
                raise DataError(
                    f"{simeo_root}: SimEO has no modality {missing[0]}; choose from s2, s1, dem, landcover, "
                    "..."
                )
            raw[s] = arrays
        classes, synthetic = tuple(SIMEO_CLASSES), True
        band_names = {m: MODALITIES[m].bands for m in mods if m in MODALITIES}
        fp["simeo"] = {"root": str(simeo_root), "seed": meta.get("seed"), "version": meta.get("version")}
    else:
        ds = None
        for s in SPLIT_NAMES:
            raw[s], ids[s], ds = _dataset_split(read, s, mods, task, read_options, seed, limits.get(s))
        classes = task_classes(ds, task)  # segmentation: the mask classes where the dataset has its own
        fp["dataset"] = describe_dataset(ds)
        band_names = {m: tuple(v) for m, v in (getattr(ds, "band_names", {}) or {}).items() if m in mods}
        synthetic = bool(getattr(ds, "synthetic", False))
        fp["cache_key"] = str(getattr(ds, "cache_key", ""))
    k = len(classes)
    if k < 2 and not (task == "multilabel" and k >= 1):
        raise DataError(f"{data}: {k} class(es); a {task} evaluation needs at least 2")
    splits: dict[str, EvalSplit] = {}
    for s in SPLIT_NAMES:
        a = raw[s]
        strata = _strata(task, a.get("label"), a.get("multilabel"), a.get("mask"), k)
        sel = _select(len(strata), strata, limits.get(s), seed)
        inputs = {}
        for m in mods:
            cat = m in MODALITIES and MODALITIES[m].categorical
            t = torch.from_numpy(np.ascontiguousarray(a[m][sel]))
            t = centre_crop(t, crop)
            inputs[m] = _resize(t if cat else t.float(), size, cat)
        target = torch.from_numpy(np.ascontiguousarray(a[key][sel]))
        if task == "segment":
            target = _resize(centre_crop(target.long(), crop), size, True)
        elif task == "classify":
            target = target.long()
        else:
            target = target.float()
        splits[s] = EvalSplit(inputs, target, strata[sel], [ids[s][i] for i in sel] if ids[s] else [])
    spec = TaskSpec(kind=task, num_classes=k)
    return EvalData(name=str(data), task=spec, classes=classes, modalities=mods, splits=splits,
                    band_names=band_names, synthetic=synthetic, fingerprint=fp)


def make_eval_data(
    name: str,
    task: str,
    classes: Sequence[str],
    splits: dict[str, tuple[dict[str, torch.Tensor], torch.Tensor]],
    synthetic: bool = False,
) -> EvalData:
    """Build :class:`EvalData` from tensors already in memory (tests, notebooks).

    ``splits`` maps ``"train" | "val" | "test"`` to ``(inputs, target)`` with the shapes of the module
    docstring; strata are derived from the targets.
    """
    k = len(classes)
    out = {}
    for s in SPLIT_NAMES:
        if s not in splits:
            raise ConfigError(f"make_eval_data: split '{s}' missing; give train, val and test")
        inputs, target = splits[s]
        t = target.numpy()
        strata = _strata(task, t if task == "classify" else None, t if task == "multilabel" else None,
                         t if task == "segment" else None, k)
        out[s] = EvalSplit(dict(inputs), target, strata, [f"{s}-{i}" for i in range(len(target))])
    mods = tuple(splits["train"][0])
    blobs = (t.numpy().tobytes()
             for s in SPLIT_NAMES for t in [*(out[s].inputs[m] for m in mods), out[s].target])
    return EvalData(
        name=name,
        task=TaskSpec(kind=task, num_classes=k),
        classes=tuple(classes),
        modalities=mods,
        splits=out,
        synthetic=synthetic,
        fingerprint={"data": name, "task": task, "digest": bytes_digest(blobs)},
    )


__all__ = ["EvalData", "EvalSplit", "IGNORE_INDEX", "TASKS", "card_stats", "load_eval_data", "make_eval_data",
           "stats_digest"]
