"""Pretraining data: held in memory, served as whole batches, normalised and augmented per batch.

Why in memory: pretraining reads every sample once per epoch, and EO patches of a pretraining set
at 32 x 32 (SimEO, BigEarthNet crops) fit in RAM. A batch is then one ``index_select`` per modality
(``__getitems__``), so the data loader needs no worker processes and never starves the model; the
per-sample work (normalisation, NaN filling, augmentation) runs *batched* on the training device in
the method's ``on_after_batch_transfer`` (see :mod:`eoreps.ssl.methods.base`).

* :class:`PretrainData` -- images per modality ``(N, C, H, W)`` in physical units (NaN = no data),
  optional labels ``(N,)`` for the online kNN monitor, band names and a description for the card;
* :func:`load_patches` opens any dataset eoreps knows (``"simeo"`` or a path) and materialises it;
* :func:`load_scenes` gives the large scenes Tile2Vec samples its triplets from;
* :class:`BatchDataset` / :class:`TripletDataset` serve batches; :class:`PretrainDataModule`
  wraps them for Lightning (shuffled, sharded and resumable:
  :class:`eoreps.checkpoints.ResumableSampler`).
* :class:`StreamedPatches` -- a packed archive (``eoreps data pack``) *streamed* instead: the same face
  as :class:`PretrainData` for a run (``modalities``, ``in_chans``, ``image_size``, ``stats()``,
  ``info``), served by LitData's ``StreamingDataLoader`` with worker processes, random crops cut per
  sample in the workers, rank-disjoint under DDP and resumable mid-epoch (the loader's state is in the
  Lightning checkpoint). Under ``loader="stream"`` (the default) every source is read this way: one that
  is not packed yet is packed once into the cache (:func:`eoreps.data.pack_cache.packed_source`). The
  in-memory classes above are the ``loader="memory"`` fast path for small sources, with the same random
  crops (:func:`eoreps.data.crops.random_crop_batch`, cut per batch) and the same batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from litdata import StreamingDataLoader
from torch.utils.data import DataLoader, Dataset

from eoreps.data.crops import centre_crop, gather_windows, random_crop_batch
from eoreps.data.datasets.base import describe_dataset
from eoreps.data.loader_workers import AUTO, agree_workers, resolve_workers
from eoreps.data.stats import BandStats, compute_stats
from eoreps.errors import ConfigError, DataError
from eoreps.progress import progress


@dataclass
class PretrainData:
    """Images of a pretraining set held in memory.

    Attributes:
        images: modality -> ``(N, C, H, W)`` float32, physical units, NaN = no data.
        labels: ``(N,)`` int64 single-label classes (for the kNN monitor) or ``None``.
        band_names: modality -> band names.
        info: what the data is (goes into the exported card).
    """

    images: dict[str, torch.Tensor]
    labels: torch.Tensor | None = None
    band_names: dict[str, tuple[str, ...]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        sizes = {m: int(x.shape[0]) for m, x in self.images.items()}
        if not sizes:
            raise DataError(f"{self.info.get('data', 'dataset')}: no image modality to pretrain on")
        if len(set(sizes.values())) != 1:
            raise DataError(
                f"{self.info.get('data', 'dataset')}: modalities have different sample counts {sizes}"
            )
        for m, x in self.images.items():
            if x.ndim != 4:
                raise DataError(f"{self.info.get('data', 'dataset')}: '{m}' must be (N, C, H, W) images, got "
                                f"{tuple(x.shape)}; pretrain on image modalities only")

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality names, in the order given when loading."""
        return tuple(self.images)

    @property
    def in_chans(self) -> dict[str, int]:
        """Channels per modality."""
        return {m: int(x.shape[1]) for m, x in self.images.items()}

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of the images."""
        x = next(iter(self.images.values()))
        return int(x.shape[-2]), int(x.shape[-1])

    def __len__(self) -> int:
        return int(next(iter(self.images.values())).shape[0])

    def subset(self, n: int, seed: int = 0) -> PretrainData:
        """A random subset of at most ``n`` samples (for monitors)."""
        if n >= len(self):
            return self
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n].sort().values
        return PretrainData({m: x[idx] for m, x in self.images.items()},
                            None if self.labels is None else self.labels[idx], self.band_names, self.info)

    def centre(self, crop: int | None) -> PretrainData:
        """The centred ``crop`` px window of every image (views; ``None``: unchanged), e.g. for monitors."""
        if crop is None:
            return self
        return PretrainData({m: centre_crop(x, crop) for m, x in self.images.items()}, self.labels,
                            self.band_names, self.info)

    def stats(self) -> BandStats:
        """Per-band mean/std over finite values (:func:`eoreps.data.stats.compute_stats`)."""
        st = compute_stats(BatchDataset(self), modalities=list(self.modalities))
        st.bands = {m: tuple(self.band_names.get(m, ())) for m in self.modalities}
        return st


def _open(data: str, split: str, modalities: Sequence[str], options: dict[str, Any] | None, seed: int) -> Any:
    from eoreps.data.formats import open_dataset

    return open_dataset(data, split=split, modalities=list(modalities), run_seed=seed, **dict(options or {}))


def load_patches(data: str, modalities: Sequence[str], split: str = "train", max_samples: int | None = None,
                 seed: int = 0, with_labels: bool = True, options: dict[str, Any] | None = None,
                 crop: int | None = None) -> PretrainData:
    """Open ``data`` (``"simeo"`` or a dataset path) and hold ``modalities`` of ``split`` in memory.

    Args:
        data: ``"simeo"`` (built-in synthetic data) or a folder any eoreps loader recognises.
        modalities: image modalities to keep (e.g. ``["s2", "s1"]``).
        split: ``"train"`` for pretraining, ``"val"`` for the kNN monitor, ...
        max_samples: keep a random subset of this size (all when ``None``).
        seed: seed of that subset.
        with_labels: keep single-label classes (``label``) when the dataset has them.
        options: dataset loader options (:func:`eoreps.data.formats.open_dataset`); ``seed`` also seeds
            an automatic split.
        crop: keep the centred ``crop`` px of each patch (``None``: whole patches).
    """
    ds = _open(data, split, modalities, options, seed)
    n = len(ds)
    if n == 0:
        raise DataError(f"{data}: split '{split}' is empty; choose another split or dataset")
    idx = np.arange(n)
    if max_samples is not None and max_samples < n:
        idx = np.sort(np.random.default_rng(seed).choice(n, size=max_samples, replace=False))
    first = ds[int(idx[0])]
    for m in modalities:
        if m not in first:
            raise DataError(f"{data}: samples have no modality '{m}' (keys: {', '.join(map(str, first))}); "
                            "choose modalities among them")
    labels = torch.empty(len(idx), dtype=torch.int64) if with_labels and "label" in first else None
    arrays, rows = getattr(ds, "arrays", None), getattr(ds, "indices", None)
    if isinstance(arrays, dict) and rows is not None and all(m in arrays for m in modalities):
        # array-backed datasets (SimEO): one fancy-index per modality instead of a loop over samples
        sel = np.asarray(rows)[idx]
        images = {
            m: centre_crop(torch.from_numpy(np.asarray(arrays[m][sel], dtype=np.float32)), crop).contiguous()
            for m in modalities
        }
        if labels is not None:
            labels = torch.from_numpy(np.asarray(arrays["label"][sel], dtype=np.int64))
    else:
        images = {
            m: torch.empty(
                (len(idx), *centre_crop(torch.as_tensor(first[m]), crop).shape), dtype=torch.float32
            )
            for m in modalities
        }
        for row, i in enumerate(progress(idx, desc=f"loading {split}", total=len(idx), unit="sample")):
            s = first if row == 0 else ds[int(i)]
            for m in modalities:
                images[m][row] = centre_crop(torch.as_tensor(s[m], dtype=torch.float32), crop)
            if labels is not None:
                labels[row] = int(s["label"])
    bands = getattr(ds, "band_names", {}) or {}
    info = {"data": str(data), "split": split, "num_samples": len(idx), **describe_dataset(ds),
            "synthetic": bool(getattr(ds, "synthetic", False))}
    if hasattr(ds, "num_skipped_nodata"):
        info["skipped_nodata"] = int(ds.num_skipped_nodata)
    return PretrainData(images, labels, {m: tuple(bands.get(m, ())) for m in modalities}, info)


def default_crop(backbone: str, backbone_kwargs: dict[str, Any]) -> int | None:
    """``--crop`` left unset: the ViT's ``img_size`` when given, 32 px for the ``cnn-*`` backbones (the size
    they are built and benchmarked at), else ``None`` (whole patches)."""
    size = backbone_kwargs.get("img_size")
    if size is not None:
        return int(size[0] if isinstance(size, (list, tuple)) else size)
    return 32 if backbone.startswith("cnn-") else None


def stream_source(
    data: str,
    modalities: Sequence[str],
    crop: int | None,
    seed: int = 0,
    max_samples: int | None = None,
    options: dict[str, Any] | None = None,
    name: str | None = None,
) -> StreamedPatches | None:
    """The training split of ``data`` as :class:`StreamedPatches` when ``data`` is a packed archive, else
    ``None`` (the in-memory path). ``crop``: px per random crop, ``None`` = whole patches; ``name``: what the
    run calls the data (default ``data``; a cached pack is named by its source)."""
    from eoreps.data.pack_cache import is_packed

    if not is_packed(data):
        return None
    return StreamedPatches(
        _open(data, "train", modalities, options, seed), modalities, crop, seed, max_samples, name or data
    )


def crop_label(crop: int | None) -> str:
    """How a run cuts its training patches, as outputs state it (``"random 32 px"`` / ``"full patch"``)."""
    return f"random {crop} px" if crop else "full patch"


def load_scenes(data: str, modalities: Sequence[str], num_scenes: int = 16, scene_size: int = 256,
                seed: int = 0, options: dict[str, Any] | None = None) -> PretrainData:
    """Large images for Tile2Vec triplets.

    ``"simeo"``: ``num_scenes`` SimEO scenes of ``scene_size`` px
    (:class:`eoreps.data.datasets.simeo.SimEOScenes`, generated once and cached); a SimEO folder with
    a ``scenes`` part: its scenes; any other dataset: its training patches serve as scenes (tiles must
    then be smaller than the patches).
    """
    from eoreps.data.datasets.simeo import SimEOScenes
    from eoreps.data.simeo import is_simeo_folder

    if data == "simeo":
        ds = SimEOScenes(None, modalities=modalities, n=num_scenes, size=scene_size, seed=seed)
    elif is_simeo_folder(data):
        ds = SimEOScenes(data, modalities=modalities)
    else:
        return load_patches(data, modalities, split="train", seed=seed, with_labels=False, options=options)
    images = {m: torch.from_numpy(np.array(ds.arrays[m], dtype=np.float32)) for m in modalities}
    return PretrainData(images, None, {m: tuple(ds.band_names[m]) for m in modalities},
                        {"data": str(data), "split": "scenes", "num_samples": len(ds), "scene_size": ds.size,
                         "dataset": "SimEOScenes", "synthetic": True})


class BatchDataset(Dataset):
    """Sample ``i`` of a :class:`PretrainData`, or a whole batch at once through ``__getitems__``.

    ``__getitems__(indices)`` returns ``{modality: (B, C, H, W), "label": (B,), "index": (B,)}`` with
    one ``index_select`` per key; use :func:`collate_batch` as the loader's ``collate_fn``. With ``crop``,
    each sample of a batch gets a random ``crop`` px window (the same in every modality), drawn from a
    generator seeded by ``(seed, indices)``: the shuffled order, a function of ``(seed, epoch)``, makes the
    windows differ between epochs, and a resumed run cuts what an uninterrupted one would.
    """

    def __init__(self, data: PretrainData, crop: int | None = None, seed: int = 0) -> None:
        self.data, self.seed = data, seed
        h, w = data.image_size
        self.crop = crop if crop is not None and crop < min(h, w) else None
        self.image_size = (self.crop, self.crop) if self.crop else (h, w)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        out = {m: x[i] for m, x in self.data.images.items()}
        if self.data.labels is not None:
            out["label"] = self.data.labels[i]
        return out

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        out = {m: x.index_select(0, idx) for m, x in self.data.images.items()}
        if self.crop is not None:
            g = torch.Generator().manual_seed(hash((self.seed, *idx[:8].tolist(), len(idx))) % (2**62))
            out = random_crop_batch(out, self.data.modalities, self.crop, g)
        if self.data.labels is not None:
            out["label"] = self.data.labels.index_select(0, idx)
        out["index"] = idx
        return out


class StreamedPatches:
    """The training split of a packed archive, streamed (see the module docstring).

    Args:
        packed: the split (:class:`eoreps.data.datasets.packed.PackedDataset`).
        modalities: image modalities to pretrain on.
        crop: random crop in px per sample (``None``: whole patches).
        seed: shuffle (and crop) seed; the order is a function of ``(seed, epoch)``.
        max_samples: stream about this many samples per epoch (all when ``None``).
        data: what ``--data`` said (the card's ``data``).
    """

    labels = None

    def __init__(self, packed: Any, modalities: Sequence[str], crop: int | None, seed: int = 0,
                 max_samples: int | None = None, data: str = "") -> None:
        self.packed, self.modalities, self.seed, self.max_samples = (
            packed,
            tuple(modalities),
            seed,
            max_samples,
        )
        self.band_names = {m: tuple(packed.band_names.get(m, ())) for m in self.modalities}
        shape = {m: tuple(packed.manifest["modalities"][m]["shape"]) for m in self.modalities}
        bad = [m for m, sh in shape.items() if len(sh) != 3]
        if bad:
            raise DataError(f"{packed.root}: '{bad[0]}' is not an image modality (shape {shape[bad[0]]}); "
                            "pretrain on image modalities only")
        self.in_chans = {m: int(sh[0]) for m, sh in shape.items()}
        h, w = next(iter(shape.values()))[1:]
        self.crop = crop if crop is not None and crop < min(h, w) else None
        self.image_size = (self.crop, self.crop) if self.crop else (int(h), int(w))
        self._len = len(self.stream())
        self.info = {"data": str(data), "split": packed.split, "num_samples": self._len, **packed.describe(),
                     "synthetic": bool(packed.synthetic), "streamed": True, "loader": "stream",
                     "crop": crop_label(self.crop)}

    def __len__(self) -> int:
        return self._len

    def stats(self) -> BandStats:
        """The pack's per-band statistics (from its manifest; computed when it has none)."""
        from eoreps.data.stats import cached_stats
        from eoreps.tasks.data import stats_cache_dir

        return cached_stats(
            self.packed, stats_cache_dir(), modalities=list(self.modalities), max_samples=2000
        )

    def stream(self) -> Any:
        """A fresh LitData stream (call it in the process that iterates it: DDP ranks are detected then)."""
        return self.packed.stream(shuffle=True, seed=self.seed, crop=self.crop, keys=(*self.modalities,),
                                  max_samples=self.max_samples)

    def loader(self, batch_size: int, num_workers: int = 0) -> Any:
        """LitData's ``StreamingDataLoader`` of :meth:`stream`: batches ``{modality: (B, C, H, W)}``,
        incomplete last batches dropped; its ``state_dict`` resumes mid-epoch."""
        return _StreamLoader(self.stream(), batch_size=batch_size, num_workers=num_workers, drop_last=True)


def _plain(obj: Any) -> Any:
    """``obj`` with NumPy scalars as Python numbers (``torch.load(weights_only=True)`` refuses NumPy)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_plain(v) for v in obj)
    return obj.item() if isinstance(obj, np.generic) else obj


class _StreamLoader(StreamingDataLoader):
    """LitData's loader whose ``state_dict`` (saved in Lightning checkpoints) holds plain Python values: with
    ``subsample`` (``max_samples``) LitData puts NumPy integers in it, which a checkpoint loaded with
    ``weights_only=True`` (torch >= 2.6, what ``--resume`` does) refuses."""

    def state_dict(self) -> dict[str, Any]:
        return _plain(super().state_dict())


class StreamedTriplets(StreamedPatches):
    """Tile2Vec triplets from a streamed pack: each whole patch of a batch is a scene, and the batch is cut
    into triplets by :class:`TripletDataset`'s rule (anchor and neighbour from one patch, the distant tile
    from another patch of the batch), in the loader workers. Positions are a function of ``seed`` and the
    batch's sample ids, so a resumed run cuts what an uninterrupted one would.

    Args:
        tile, neighborhood: as :class:`TripletDataset`; the other arguments as :class:`StreamedPatches`.
    """

    def __init__(self, packed: Any, modalities: Sequence[str], tile: int, neighborhood: int, seed: int = 0,
                 max_samples: int | None = None, data: str = "") -> None:
        super().__init__(packed, modalities, None, seed, max_samples, data)
        h, w = self.image_size
        if tile >= min(h, w):
            raise ConfigError(f"tile size {tile} is not smaller than the packed patches' {h}x{w} px; use a "
                              "smaller tile_size (method_kwargs tile_size=16)")
        self.tile, self.neighborhood = tile, neighborhood
        self.image_size = (tile, tile)
        self.crop = tile  # what the monitors and the kNN sets see: the centred tile (the stream cuts none)
        self.info["crop"] = f"triplets of {tile} px tiles from whole patches"

    def stream(self) -> Any:
        return self.packed.stream(shuffle=True, seed=self.seed, crop=None, keys=(*self.modalities, "id"),
                                  max_samples=self.max_samples)

    def loader(self, batch_size: int, num_workers: int = 0) -> Any:
        cut = _CutTriplets(self.modalities, self.tile, self.neighborhood, self.seed)
        return _StreamLoader(self.stream(), batch_size=batch_size, num_workers=num_workers, drop_last=True,
                             collate_fn=cut)


class _CutTriplets:
    """The collate function of :class:`StreamedTriplets` (picklable for the loader workers)."""

    def __init__(self, modalities: Sequence[str], tile: int, neighborhood: int, seed: int) -> None:
        self.modalities, self.tile, self.neighborhood, self.seed = tuple(modalities), tile, neighborhood, seed

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, dict[str, torch.Tensor]]:
        import zlib

        scenes = PretrainData({m: torch.stack([s[m] for s in samples]) for m in self.modalities})
        ids = zlib.crc32("|".join(str(s["id"]) for s in samples).encode())
        cut = TripletDataset(scenes, self.tile, self.neighborhood, length=len(samples), seed=self.seed + ids)
        return cut.__getitems__(list(range(len(samples))))


def collate_batch(batch: Any) -> Any:
    """The loader's ``collate_fn``: batches arrive already collated from ``__getitems__``."""
    return batch


class TripletDataset(Dataset):
    """Tile2Vec triplets ``(anchor, neighbour, distant)`` cut from large scenes, a batch at a time.

    Item ``i`` uses scene ``i % S``: an anchor tile at a random position, a neighbour tile whose
    top-left corner lies within ``neighborhood`` px of the anchor's, and a distant tile from another
    scene (from the same scene at least ``2 * neighborhood`` px away when there is a single scene).
    Positions are a deterministic function of ``(seed, epoch, indices)``.

    Why not :class:`eoreps.data.datasets.simeo.SimEOTriplets`: it fixes the triplets once and cuts them
    sample by sample; here fresh triplets are drawn every epoch (more distinct pairs from the same
    scenes) and a whole batch is cut with one advanced-indexing gather per modality.

    ``__getitems__`` returns ``{"anchor": {m: (B, C, t, t)}, "neighbor": {...}, "distant": {...}}``.
    """

    def __init__(self, scenes: PretrainData, tile: int = 32, neighborhood: int = 16,
                 length: int | None = None, seed: int = 0) -> None:
        h, w = scenes.image_size
        if tile > min(h, w):
            raise ConfigError(f"tile size {tile} exceeds the scenes' {h}x{w} px; use a smaller tile_size "
                              "(method_kwargs tile_size=16)")
        self.scenes, self.tile, self.neighborhood, self.seed = scenes, tile, neighborhood, seed
        self.length = length if length is not None else len(scenes) * max(1, (h // tile) * (w // tile))
        self.epoch = 0

    def __len__(self) -> int:
        return self.length

    def _cut(self, s: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {m: gather_windows(img, s, y, x, self.tile) for m, img in self.scenes.images.items()}

    def __getitem__(self, i: int) -> dict[str, dict[str, torch.Tensor]]:
        b = self.__getitems__([i])
        return {k: {m: x[0] for m, x in v.items()} for k, v in b.items()}

    def __getitems__(self, indices: Sequence[int]) -> dict[str, dict[str, torch.Tensor]]:
        n_sc = len(self.scenes)
        h, w = self.scenes.image_size
        t, r = self.tile, self.neighborhood
        idx = torch.as_tensor(indices, dtype=torch.long)
        g = torch.Generator().manual_seed(hash((self.seed, self.epoch, int(idx[0]), len(idx))) % (2**62))
        b = len(idx)
        s = idx % n_sc
        ya = torch.randint(0, h - t + 1, (b,), generator=g)
        xa = torch.randint(0, w - t + 1, (b,), generator=g)
        yn = (ya + torch.randint(-r, r + 1, (b,), generator=g)).clamp(0, h - t)
        xn = (xa + torch.randint(-r, r + 1, (b,), generator=g)).clamp(0, w - t)
        if n_sc > 1:
            sd = (s + torch.randint(1, n_sc, (b,), generator=g)) % n_sc
            yd = torch.randint(0, h - t + 1, (b,), generator=g)
            xd = torch.randint(0, w - t + 1, (b,), generator=g)
        else:  # one scene: the distant tile is at least 2r px away along one axis (wraps around the scene)
            sd = s
            yd = (ya + 2 * r + torch.randint(0, max(1, h - t - 4 * r), (b,), generator=g)) % (h - t + 1)
            xd = (xa + 2 * r + torch.randint(0, max(1, w - t - 4 * r), (b,), generator=g)) % (w - t + 1)
        return {
            "anchor": self._cut(s, ya, xa),
            "neighbor": self._cut(s, yn, xn),
            "distant": self._cut(sd, yd, xd),
        }


class PretrainDataModule(L.LightningDataModule):
    """Serves a :class:`BatchDataset` or :class:`TripletDataset` to Lightning.

    Args:
        dataset: the training dataset (batches through ``__getitems__``).
        batch_size: per process.
        num_workers: loader processes, or ``"auto"``: :func:`eoreps.data.loader_workers.resolve_workers` for
            a stream, 0 for in-memory data (a batch is one index_select). A stream's count is made equal on
            every DDP rank (:func:`eoreps.data.loader_workers.agree_workers`).
        seed: shuffling seed.
        record: the run's ``loader.json`` (:func:`eoreps.data.loader_workers.settle_workers`), rewritten when
            the ranks agree on fewer workers than rank 0 resolved.
    """

    def __init__(self, dataset: Dataset, batch_size: int, num_workers: int | str = 0, seed: int = 0,
                 record: Path | None = None) -> None:
        super().__init__()
        if batch_size < 2:
            raise ConfigError(
                f"batch size {batch_size}: contrastive methods need at least 2 samples per batch"
            )
        if len(dataset) < batch_size:  # type: ignore[arg-type]
            raise ConfigError(f"only {len(dataset)} training samples for batch size {batch_size}; "  # type: ignore[arg-type]
                              f"lower batch_size={batch_size} or use more data")
        self.dataset, self.batch_size, self.num_workers, self.seed = dataset, batch_size, num_workers, seed
        self.record = record

    def train_dataloader(self) -> DataLoader:
        from eoreps.checkpoints import resumable_loader

        if isinstance(self.dataset, StreamedPatches):  # built here, after DDP started: LitData shards by rank
            workers = resolve_workers(self.num_workers, self.trainer)
            workers = agree_workers(workers, self.trainer, self.record)  # equal on every rank
            self.dataset.info["loader_workers"] = workers  # what "auto" chose, in the run's record
            return self.dataset.loader(self.batch_size, workers)

        # sharded over processes by the sampler itself (the Trainer runs with use_distributed_sampler=False)
        workers = 0 if self.num_workers == AUTO else int(self.num_workers)  # a batch is one index_select
        return resumable_loader(self.dataset, self.batch_size, self.seed, self.trainer, drop_last=True,
                                num_workers=workers, collate_fn=collate_batch, persistent_workers=workers > 0)
