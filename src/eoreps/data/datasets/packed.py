"""A packed archive (``eoreps data pack``): LitData chunks per split, ``labels.parquet`` and a manifest.

Layout (format ``"packed"``, detected by ``eoreps_pack.json``; see ``docs/data.md``, "Streaming a packed
archive")::

    <root>/eoreps_pack.json   manifest: modalities, bands, task, classes, splits, per-band statistics
    <root>/labels.parquet     split, index (position in the split), id, label | y_<k> columns
    <root>/<split>/           one LitData optimized dataset (index.json + chunk-*.bin)

Two ways to read it:

* :class:`PackedDataset` -- map-style (``ds[i]``: eoreps' sample dict at native resolution), for the
  code paths that index samples (``fit``, ``evaluate``, statistics). Labels (:meth:`label_matrix`)
  come from ``labels.parquet`` without reading an image, and the manifest's statistics are served as
  :attr:`PackedDataset.precomputed_stats` so :func:`eoreps.data.stats.cached_stats` does not re-scan.
* :meth:`PackedDataset.stream` -- a :class:`PackedStream` (a LitData ``StreamingDataset``): shuffled
  per ``(seed, epoch)``, each DDP rank and loader worker reads a disjoint part of each epoch, random
  crops drawn per sample; served by LitData's ``StreamingDataLoader``, whose ``state_dict`` resumes
  mid-epoch.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from litdata import StreamingDataset

from eoreps.data.crops import crop_sample
from eoreps.data.datasets.base import EODataset, Sample
from eoreps.data.pack_manifest import MANIFEST, check_manifest
from eoreps.errors import ConfigError, DataError

LABELS = "labels.parquet"  # written by eoreps.data.pack (one row per packed sample)
_LABEL_KEYS = ("label", "multilabel", "target", "mask")
_TENSOR_DTYPES = {"label": torch.int64, "mask": torch.int64, "multilabel": torch.float32,
                  "target": torch.float32}


def read_manifest(root: str | Path) -> dict[str, Any]:
    """The manifest of the pack at ``root``, checked by the writer's :func:`eoreps.data.pack.check_manifest`
    (format and eoreps version, every chunk present with its recorded size)."""
    return check_manifest(Path(root))


def _dtype(key: str, value: Any) -> torch.dtype | None:
    """The tensor dtype of a stored value: the label keys' own, bool masks (SimEO's ``cloud``) and categorical
    modalities (``landcover``: int64) as the loaders give them, other arrays float32 (images), ``None``:
    scalars as stored."""
    from eoreps.data.modalities import MODALITIES

    if key in _TENSOR_DTYPES:
        return _TENSOR_DTYPES[key]
    if not isinstance(value, np.ndarray) or value.ndim == 0:
        return None
    if value.dtype == np.bool_:
        return torch.bool
    return torch.int64 if key in MODALITIES and MODALITIES[key].categorical else torch.float32


def _to_tensor(key: str, value: Any) -> Any:
    if isinstance(value, str):
        return value
    dtype = _dtype(key, value)
    if dtype is None:
        return torch.as_tensor(value)
    if dtype is torch.float32 and isinstance(value, np.ndarray) and value.dtype != np.float32:
        # images stored in their native dtype (uint16 S2 DN, eoreps.data.pack_dtypes) or float64: one cast
        return torch.from_numpy(value.astype(np.float32))
    return torch.tensor(np.asarray(value), dtype=dtype)  # a copy: LitData's buffers are read-only


def to_sample(item: dict[str, Any], keep: Sequence[str] | None = None) -> Sample:
    """A stored item as eoreps' sample dict (tensors; images float32 in physical units; ``keep``: keys
    kept)."""
    return {k: _to_tensor(k, v) for k, v in item.items() if keep is None or k in keep}


class PackedDataset(EODataset):
    """Map-style view of one split of a packed archive (see the module docstring).

    Args:
        root: the pack folder (holds ``eoreps_pack.json``).
        split: ``"train"``, ``"val"``, ``"test"`` (those the pack has) or ``"all"``.
        modalities: modalities to return (default: every packed one).
    """

    def __init__(
        self, root: str | Path, split: str = "train", modalities: Sequence[str] | None = None
    ) -> None:
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        packed = tuple(self.manifest.get("modalities", {}))
        unknown = [m for m in (modalities or ()) if m not in packed]
        if unknown:
            raise DataError(
                f"{self.root}: the pack has no modality '{unknown[0]}' (has: {', '.join(packed)}); "
                "choose --modalities among them or re-pack"
            )
        self.modalities = tuple(modalities) if modalities else packed
        self.band_names = {m: tuple(self.manifest["modalities"][m].get("bands", ())) for m in self.modalities}
        self.classes = tuple(self.manifest.get("classes") or ())
        self.task = str(self.manifest.get("task", "none"))
        self.synthetic = str((self.manifest.get("source") or {}).get("format", "")) == "simeo"
        mask = self.manifest.get("mask") or {}
        self.mask_classes = tuple(mask.get("classes", ()))
        sizes = {k: int(v) for k, v in self.manifest.get("splits", {}).items()}
        if split != "all" and split not in sizes:
            raise DataError(
                f"{self.root}: the pack has no split '{split}' (has: {', '.join(sizes)}); choose one of them"
            )
        self.split = split
        self.parts = [(s, n) for s, n in sizes.items() if split in ("all", s) and n > 0]
        nodata = self.manifest.get("skipped_nodata")
        if isinstance(nodata, dict):  # packed with skip_nodata=True: what the source left out, as it reports
            self.num_skipped_nodata = sum(int(nodata.get(s, 0)) for s in sizes if split in ("all", s))
        self._offsets = np.cumsum([0] + [n for _, n in self.parts])
        self._readers: dict[str, Any] = {}
        self._labels: Any = None

    @property
    def cache_key(self) -> str:
        """Tells packs and splits apart in :func:`eoreps.data.stats.cached_stats`."""
        return f"{self.root.resolve()}:{self.split}"

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def _reader(self, split: str) -> Any:
        if split not in self._readers:
            self._readers[split] = open_stream(self.root / split)
        return self._readers[split]

    def __getitem__(self, index: int) -> Sample:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} samples")
        index %= n
        part = int(np.searchsorted(self._offsets, index, side="right")) - 1
        split = self.parts[part][0]
        item = self._reader(split)[int(index - self._offsets[part])]
        other = set(self.manifest["modalities"]) - set(self.modalities)  # packed modalities not asked for
        return to_sample({k: v for k, v in item.items() if k not in other})  # the source's sample, every key

    def __getstate__(self) -> dict[str, Any]:  # loader workers open their own readers
        return {**self.__dict__, "_readers": {}}

    # ---------------------------------------------------------------------------------- labels, stats
    def labels_table(self) -> Any:
        """The rows of ``labels.parquet`` for this split, in sample order."""
        if self._labels is None:
            import pandas as pd

            path = self.root / LABELS
            try:
                table = pd.read_parquet(path)
            except (OSError, ValueError) as e:
                raise DataError(f"{path}: unreadable labels table ({e}); re-run eoreps data pack") from None
            order = {s: i for i, (s, _) in enumerate(self.parts)}
            table = table[table["split"].isin(list(order))]
            table = table.assign(_part=table["split"].map(order)).sort_values(["_part", "index"])
            if len(table) != len(self):
                raise DataError(f"{path}: {len(table)} label rows for {len(self)} packed samples of split "
                                f"'{self.split}'; re-run eoreps data pack")
            self._labels = table.reset_index(drop=True)
        return self._labels

    def label_matrix(self) -> torch.Tensor:
        """Labels of every sample from ``labels.parquet`` (no image is read): ``(N,)`` or ``(N, K)``."""
        table = self.labels_table()
        if self.task == "single":
            return torch.tensor(table["label"].to_numpy(), dtype=torch.int64)
        if self.task == "multi":
            cols = [f"y_{k}" for k in range(len(self.classes))]
            return torch.tensor(table[cols].to_numpy(), dtype=torch.float32)
        raise ConfigError(f"{self.root}: the pack has no class labels (task '{self.task}')")

    @property
    def precomputed_stats(self) -> Any:
        """The manifest's per-band statistics (:class:`~eoreps.data.stats.BandStats`) of the packed
        modalities: the training split's (``train_stats``), else every packed sample's (``stats``) when the
        pack holds a single split; ``None`` otherwise, so :func:`~eoreps.data.stats.cached_stats` scans the
        split (packs of the same format version written before ``train_stats`` existed: their ``stats``
        mix train, val and test samples, which normalisation must not see)."""
        from eoreps.data.stats import BandStats

        stats = self.manifest.get("train_stats")
        if not stats:
            filled = [s for s, n in (self.manifest.get("splits") or {}).items() if n]
            if len(filled) > 1:
                return None
            stats = self.manifest.get("stats") or {}
        mods = [m for m in self.modalities if m in stats]
        return BandStats(
            mean={m: tuple(stats[m]["mean"]) for m in mods},
            std={m: tuple(stats[m]["std"]) for m in mods},
            count={m: tuple(int(c) for c in stats[m].get("count", ())) for m in mods},
            bands={m: self.band_names.get(m, ()) for m in mods},
            num_samples=int(self.manifest.get("splits", {}).get("train", 0)),
            fingerprint={"source": str(self.root / MANIFEST)},
        )

    def describe(self) -> dict[str, Any]:
        """What a run used: the pack, its source and classes, and what the source's reader recorded about
        the source when it was packed (e.g. a GeoTIFF folder's id column and split rule)."""
        described = dict(self.manifest.get("source_description") or {})
        return {**described, "dataset": "PackedDataset", "classes": list(self.classes),
                "pack": str(self.root), "source": self.manifest.get("source", {})}

    # ---------------------------------------------------------------------------------- streaming
    def stream(
        self,
        shuffle: bool = True,
        seed: int = 0,
        crop: int | None = None,
        keys: Sequence[str] | None = None,
        max_samples: int | None = None,
        drop_last: bool | None = None,
    ) -> PackedStream:
        """This split as a LitData stream (build it in the process that reads it: ranks are detected then).

        Args:
            shuffle, seed: chunk and sample order, a function of ``(seed, epoch)``.
            crop: random ``crop`` px window per sample (``None``: whole patches).
            keys: keys of each sample kept (default: the modalities and the labels).
            max_samples: stream about this many samples (LitData's ``subsample``), all when ``None``.
            drop_last: LitData's (``True`` under DDP: every rank gets as many samples).
        """
        if self.split == "all" or len(self.parts) != 1:
            raise ConfigError(f"{self.root}: stream one split (train, val or test), not '{self.split}'")
        # LitData keeps int(n * subsample) samples: + 0.5 so float rounding cannot drop one (127 of 128)
        frac = 1.0 if not max_samples or max_samples >= len(self) else (max_samples + 0.5) / len(self)
        # batch_decode="item": decode only the sample asked for. LitData's default decodes a window of
        # neighbouring samples per read, which a shuffled read then throws away (~40 array copies per sample)
        keys = tuple(keys) if keys is not None else (*self.modalities, "label")
        return PackedStream(str(self.root / self.split), shuffle=shuffle, seed=seed, drop_last=drop_last,
                            batch_decode="item",
                            subsample=float(frac), modalities=self.modalities, crop=crop,
                            keys=keys)


class _Skipped:
    """A stand-in serializer for a field no one reads: its bytes stay in the chunk, undecoded."""

    def deserialize(self, data: bytes) -> None:
        return None


def decode_only(loader: Any, keys: Collection[str]) -> bool:
    """Make LitData's item ``loader`` (a set-up ``PyTreeLoader``) decode only the fields in ``keys`` of each
    stored sample dict; the other keys then hold ``None``. True when it did.

    LitData decodes every field of an item (a SimEO pack stores 16: the modalities, labels, metadata), and
    a pretraining stream reads one or two of them: on a 16-field pack of 12-band 32 px patches, decoding
    128 samples took ~30 ms, most of it for fields dropped right after. LitData has no field selection (and
    accepts no ``PyTreeLoader`` subclass for a pack written with one), so this replaces the serializers of
    the other fields in the loader's per-leaf list by one that returns ``None``. It relies on that list
    (``_serializers_list``, with ``_data_spec``; litdata 0.2.76): where a LitData version lacks them, or the
    stored item is not a flat dict, every field is decoded as before (False).
    """
    serializers, spec = getattr(loader, "_serializers_list", None), getattr(loader, "_data_spec", None)
    if not isinstance(serializers, list) or spec is None:
        return False
    from litdata.utilities._pytree import tree_unflatten  # what PyTreeLoader.deserialize builds items with

    leaves = tree_unflatten(list(range(len(serializers))), spec)  # {key: leaf position}
    flat = isinstance(leaves, dict) and all(type(j) is int for j in leaves.values())
    if not flat or sorted(leaves.values()) != list(range(len(serializers))):
        return False  # nested fields: decode everything
    skipped = _Skipped()
    loader._serializers_list = [serializers[j] if k in keys else skipped
                                for k, j in sorted(leaves.items(), key=lambda kv: kv[1])]
    return True


class PackedStream(StreamingDataset):
    """A LitData ``StreamingDataset`` yielding eoreps sample dicts, randomly cropped per sample.

    The crop window is a function of ``(seed, epoch, sample id)``, so a resumed run cuts what the
    uninterrupted one would have. Build it with :meth:`PackedDataset.stream`.
    """

    def __init__(self, input_dir: str, *, modalities: Sequence[str], crop: int | None, keys: Sequence[str],
                 **kw: Any) -> None:
        super().__init__(input_dir, **kw)
        self.eo_modalities, self.crop, self.keys = tuple(modalities), crop, tuple(keys)
        self._read_keys = frozenset((*self.keys, "id"))  # what a sample is read for ("id": the crop's seed)
        self.decoding_selected = False  # set per epoch by __iter__: True when only self.keys are decoded

    def __iter__(self) -> PackedStream:
        self.release_chunk_maps()  # the epoch before's reader: LitData replaces it with a new one here
        it = super().__iter__()
        # the new reader's item loader is set up now: decode only the fields this stream returns
        self.decoding_selected = decode_only(self._item_loader(), self._read_keys)
        return it  # type: ignore[return-value]

    def _item_loader(self) -> Any:
        return getattr(getattr(self.cache, "_reader", None), "_item_loader", None)

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except StopIteration:
            self.release_chunk_maps()  # the epoch is over: nothing of it is read again
            raise

    def release_chunk_maps(self) -> None:
        """Unmap every chunk file the current reader holds (its pages then leave this process's RSS).

        LitData maps the chunks it reads and keeps a window of them (``_posix_keep``, 4), closing the maps it
        evicts; but each epoch (``__iter__``) builds a new reader and leaves the old one -- still mapping its
        last chunks -- alive: ``lru_cache``-decorated methods of its shuffler and item loader hold it (up to
        10 epochs). Every wrapped epoch then added its chunks' touched pages to the process's RSS (the
        2,000-pair ``benchmarks/stream_scale.py`` run held more mapped chunk pages than the 20,000-pair one).
        Closing the maps here, as LitData's own ``PyTreeLoader.close`` does at a reader's end, keeps the
        mapped chunks at most one window over any number of epochs.
        """
        close = getattr(self._item_loader(), "close", None)
        if close is not None:
            close(-1)  # PyTreeLoader.close ignores its chunk index: it unmaps every chunk it holds

    def __getitem__(self, index: Any) -> Any:
        item = super().__getitem__(index)  # fields not in keys: None (decode_only) or decoded; dropped here
        item = {k: v for k, v in item.items() if k in self._read_keys}
        if self.crop is not None:
            rng = np.random.default_rng((self.seed, self.current_epoch, zlib.crc32(str(item["id"]).encode())))
            # cut the window from LitData's stored arrays first: only the window is converted to float32
            # (a 32 px crop of a 120 px patch: 14x fewer values copied than converting, then cropping)
            item = crop_sample(item, self.eo_modalities, self.crop, rng)
        sample = to_sample(item)
        if "id" not in self.keys:
            sample.pop("id", None)
        return sample


def open_stream(path: Path, **kw: Any) -> StreamingDataset:
    """A plain LitData ``StreamingDataset`` of ``path`` (random access for :class:`PackedDataset`; decoding
    only the sample asked for, see :meth:`PackedDataset.stream`)."""
    kw.setdefault("batch_decode", "item")
    try:
        return StreamingDataset(str(path), **kw)
    except (OSError, ValueError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not a readable LitData dataset ({e}); re-run eoreps data pack") from None
