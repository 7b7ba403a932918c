"""``eoreps data pack``: any dataset eoreps reads -> LitData streaming chunks + manifest
(``eoreps_pack.json``).

Layout of a pack folder (the reader, :mod:`eoreps.data.stream`, relies on it; see docs/data.md "Packed
archives")::

    DIR/eoreps_pack.json    the manifest, written last and atomically: its presence = the pack is complete
    DIR/<split>/            one LitData optimized dataset per split (chunk-0-<k>.bin + index.json)
    DIR/labels.parquet      split, index (position in the split's stream), id, source_index, labels
    DIR/skipped.csv         source_item,reason of corrupt source items left out (unless strict)
    DIR/.pack_state/        resume state while packing (removed when done)

Samples are written in source order with LitData's own chunk writer (``litdata.streaming.writer.
BinaryWriter``, the writer ``litdata.optimize`` runs in its workers), fed by a torch ``DataLoader`` whose
``workers`` processes read and decode the source. Not ``litdata.optimize`` itself: its worker processes
cannot hand the per-band statistics back (they are computed in the same pass, here), it does not keep the
source order (``labels.parquet`` indexes the stream without reading images) and its checkpoint resume does
not cover a kill between chunks. Each split is written in *parts* of ``part_size`` samples; a part is
committed (its chunk list, checksums, labels, statistics) to ``.pack_state/state.json`` after its chunks are
on disk, so a killed pack resumes at the first uncommitted part, removing that part's stray chunks first:
no sample is duplicated or missing.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eoreps.data.datasets.base import describe_dataset
from eoreps.data.pack_manifest import (  # noqa: F401  (re-exported: the pack folder's names)
    ENGINE,
    FORMAT,
    FORMAT_VERSION,
    LITDATA_INDEX,
    MANIFEST,
    SPLITS,
    STATE_DIR,
    _major_minor,
    check_manifest,
)
from eoreps.errors import ConfigError, DataError, EoRepsError


# -------------------------------------------------------------------------------------------- options
@dataclass
class PackOptions:
    """What :func:`pack` reads and how it writes.

    Attributes:
        source: ``"simeo"``, a dataset path (format detected) or, with ``torchgeo``, the torchgeo root.
        out: the pack folder.
        splits: splits to pack; empty = ``train, val, test`` when the source has them, else ``all``.
        modalities: modalities to pack (empty = all the source has).
        torchgeo: a torchgeo dataset class name (``EuroSAT``): ``source`` is then its ``root``.
        options: more keyword options of the source's loader (``include_snow_cloud``, ``split_dir`` ...).
        workers: DataLoader processes that read the source (0 = in this process).
        part_size: samples per committed part (the resume granularity).
        chunk_bytes: LitData chunk size limit.
        resume: continue an interrupted pack in ``out``.
        strict: stop at the first corrupt source item instead of skipping it.
        seed: the run seed: default of the source's seed-like options (a GeoTIFF folder's automatic split),
            as in ``fit``/``pretrain`` with the same ``--seed``.
        source_format: the source's format name when the caller detected it already
            (:mod:`eoreps.data.pack_cache`); empty: :func:`eoreps.data.formats.detect_format` here.
    """

    source: str
    out: Path
    splits: tuple[str, ...] = ()
    modalities: tuple[str, ...] = ()
    torchgeo: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    workers: int = 0
    part_size: int = 2000
    chunk_bytes: str = "64MB"
    resume: bool = False
    strict: bool = False
    seed: int = 0
    source_format: str = ""

    def source_record(self) -> dict[str, Any]:
        """The manifest's ``source``: absolute path, format name, loader options (what resume compares)."""
        from eoreps.data.formats import detect_format

        if self.torchgeo:
            path, fmt = str(Path(self.source).resolve()), f"torchgeo:{self.torchgeo}"
        elif self.source == "simeo":
            path, fmt = "simeo", "simeo"
        else:
            path, fmt = str(Path(self.source).resolve()), self.source_format or detect_format(self.source)
        opts = {**self.options, **({"modalities": list(self.modalities)} if self.modalities else {})}
        return {
            "path": path,
            "format": fmt,
            "options": json.loads(json.dumps(opts, default=str)),
            "seed": self.seed,
        }

    def open(self, split: str) -> Any:
        """The source's dataset of ``split`` (native resolution: no ``size`` unless the options give one)."""
        if self.torchgeo:
            from eoreps.data.datasets.torchgeo import open_torchgeo

            kw = {**self.options, **({"split": split} if split != "all" else {})}
            return open_torchgeo(self.torchgeo, root=self.source, **kw)
        from eoreps.data.formats import open_dataset

        return open_dataset(self.source, split=split, modalities=self.modalities or None, run_seed=self.seed,
                            source_format=self.source_format or None, **self.options)


def _source_splits(opts: PackOptions) -> tuple[tuple[str, ...], int]:
    """The splits to pack and how many samples of ``all`` none of them holds: ``opts.splits``, else those of
    :data:`SPLITS` (and SimEO's ``shifted``) the source opens with samples when ``train`` is one of them, else
    ``all``. (The npz's rows with an empty split are in ``all`` only: ``--splits all`` packs them.)"""
    found: dict[str, int] = {}
    for split in opts.splits or (*SPLITS, "shifted"):
        try:
            found[split] = len(opts.open(split))
        except ConfigError:  # the source has no such split (a corrupt source is a DataError: reported)
            if opts.splits:
                raise
    if not opts.splits:
        found = {s: n for s, n in found.items() if n > 0}
        if "train" not in found:
            found = {"all": len(opts.open("all"))}
    if "all" in found:
        return tuple(found), 0
    return tuple(found), max(0, len(opts.open("all")) - sum(found.values()))


# ------------------------------------------------------------------------------------------- samples
def _to_item(sample: dict[str, Any]) -> dict[str, Any]:
    """A sample dict as LitData stores it: tensors -> NumPy arrays (dtype kept), strings and numbers kept."""
    out: dict[str, Any] = {}
    for k, v in sample.items():
        if v is None:
            continue
        if hasattr(v, "numpy"):
            v = v.detach().cpu().numpy()
        out[k] = v
    return out


@dataclass
class _Schema:
    """Keys, array shapes and dtypes of the first packed sample; every later sample must match. Kept in the
    resume state, so a resumed pack checks against the same first sample."""

    first_id: str
    keys: list[str]
    arrays: dict[str, list[Any]]  # key -> [shape, dtype]

    @classmethod
    def of(cls, item: dict[str, Any]) -> _Schema:
        arrays = {k: [list(v.shape), str(v.dtype)] for k, v in item.items() if isinstance(v, np.ndarray)}
        return cls(str(item.get("id", "")), list(item), arrays)

    def check(self, item: dict[str, Any], where: str) -> None:
        sid = item.get("id", "?")
        if list(item) != self.keys:
            raise DataError(
                f"{where}: sample {sid} has keys {sorted(item)}, the first sample {self.first_id} "
                f"has {sorted(self.keys)}; pack a source whose samples share one layout"
            )
        for k, (shape, dtype) in self.arrays.items():
            value = item[k]
            if not isinstance(value, np.ndarray) or str(value.dtype) != dtype:
                raise DataError(
                    f"{where}: sample {sid} has {k} of type {getattr(value, 'dtype', type(value).__name__)}, "
                    f"the first sample {self.first_id} has {dtype}; pack a source whose samples share "
                    "one layout"
                )
            if len(shape) >= 2 and list(value.shape) != shape:
                raise DataError(
                    f"{where}: sample {sid} has {k} of shape {tuple(item[k].shape)}, the first sample "
                    f"{self.first_id} has {tuple(shape)}; mixed patch sizes, pack one size (or pass "
                    "the loader option size=N to resample)"
                )


class _Guarded:
    """Dataset wrapper for the DataLoader: ``(index, sample)`` or ``(index, error message)``, so a corrupt
    item is reported by the main process (skipped or, strict, fatal) instead of killing a worker."""

    def __init__(self, ds: Any, indices: Sequence[int]) -> None:
        self.ds, self.indices = ds, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[int, dict[str, Any] | str]:
        idx = self.indices[i]
        try:
            return idx, _to_item(self.ds[idx])
        except EoRepsError as e:
            return idx, str(e)


def _first_item(batch: list[Any]) -> Any:
    return batch[0]


def _read(ds: Any, indices: Sequence[int], workers: int) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Source items ``indices`` in order, read by ``workers`` DataLoader processes."""
    from torch.utils.data import DataLoader

    loader = DataLoader(_Guarded(ds, indices), batch_size=1, collate_fn=_first_item, num_workers=workers,
                        prefetch_factor=4 if workers else None, persistent_workers=False)
    yield from loader


# ------------------------------------------------------------------------------------------ the state
class _State:
    """``.pack_state/state.json``: the source, the splits and per split the committed parts."""

    def __init__(self, root: Path, data: dict[str, Any]) -> None:
        self.root, self.data = root, data

    @property
    def dir(self) -> Path:
        return self.root / STATE_DIR

    def schema(self, item: dict[str, Any]) -> _Schema:
        """The pack's schema (that of ``item`` when it is the first sample packed)."""
        if "schema" not in self.data:
            self.data["schema"] = _Schema.of(item).__dict__
        return _Schema(**self.data["schema"])

    def parts(self, split: str) -> list[dict[str, Any]]:
        return self.data["parts"].setdefault(split, [])

    def commit(self, split: str, part: dict[str, Any]) -> None:
        from eoreps.io import write_json

        self.parts(split).append(part)
        write_json(self.dir / "state.json", self.data)


def _describe(src: dict[str, Any]) -> str:
    return src["path"] if src["format"] == "simeo" else f"{src['path']} ({src['format']})"


def _open_state(opts: PackOptions, src: dict[str, Any]) -> _State:
    """The resume state of ``opts.out``: new for an empty or missing folder, loaded for ``--resume`` of the
    same source; every other case is a one-line error and nothing in the folder is touched."""
    from eoreps.io import read_json, write_json

    out = opts.out
    resume_cmd = f"'eoreps data pack {opts.source} --out {out} --resume'"
    if (out / MANIFEST).is_file():
        raise DataError(f"{out}: already holds a complete pack ({MANIFEST}); use it as --data, check it with "
                        f"'eoreps data pack {opts.source} --out {out} --verify', or pack into another --out")
    state_file = out / STATE_DIR / "state.json"
    if state_file.is_file():
        data = read_json(state_file)
        if data.get("source") != src:
            raise DataError(
                f"{out}: holds an interrupted pack of {_describe(data.get('source', {}))}, not of "
                f"{_describe(src)}; pack into another --out"
            )
        if not opts.resume:
            raise DataError(f"{out}: holds an interrupted pack of this source; continue it with {resume_cmd} "
                            "or pack into another --out")
        return _State(out, data)
    if out.is_dir() and any(out.iterdir()):
        raise DataError(f"{out}: folder is not empty and holds no resumable pack; pass an empty or new --out")
    data = {"source": src, "format": FORMAT, "version": FORMAT_VERSION, "parts": {}}
    write_json(state_file, data)
    return _State(out, data)


def _clean_split_dir(split_dir: Path, keep: set[str]) -> None:
    """Remove what a killed part left in ``split_dir``: chunks no committed part lists, LitData's partial
    ``<rank>.index.json`` files."""
    if not split_dir.is_dir():
        return
    for p in split_dir.iterdir():
        if p.is_file() and p.name not in keep:
            p.unlink()


# ---------------------------------------------------------------------------------------- one part
@dataclass
class _Part:
    """What one written part commits."""

    n: int
    chunks: list[dict[str, Any]]
    config: dict[str, Any]
    checksums: dict[str, str]
    stats: dict[str, dict[str, Any]]
    skipped: list[list[str]]
    labels_file: str
    dtypes: dict[str, dict[str, int]] = field(default_factory=dict)  # modality -> storage dtype -> samples

    def record(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _synced_sha256(path: Path) -> str:
    """Flush ``path`` to disk (a committed part survives a power cut, not only a kill) and return its
    SHA-256."""
    import os

    from eoreps.digest import file_sha256

    with open(path, "rb+") as f:
        os.fsync(f.fileno())
    return file_sha256(path)


def _label_columns(item: dict[str, Any]) -> dict[str, Any]:
    """``label`` / ``y_<k>`` (multi-label) / ``target`` of a sample, for ``labels.parquet``."""
    cols: dict[str, Any] = {}
    if "label" in item:
        cols["label"] = int(np.asarray(item["label"]))
    if "multilabel" in item:
        cols.update({f"y_{k}": int(v > 0.5) for k, v in enumerate(np.asarray(item["multilabel"]))})
    if "target" in item:
        cols["target"] = float(np.asarray(item["target"]))
    return cols


def _write_part(opts: PackOptions, state: _State, ds: Any, split: str, number: int, indices: Sequence[int],
                bar: _Bar) -> _Part:
    """Pack source items ``indices`` of ``split`` as part ``number`` (after the committed parts' chunks)."""
    import pandas as pd
    from litdata.streaming.writer import BinaryWriter

    from eoreps.data import pack_dtypes
    from eoreps.data.pack_stats import BandStats
    from eoreps.io import atomic_path

    split_dir = opts.out / split
    parts = state.parts(split)
    first_index = sum(p["n"] for p in parts)
    writer = BinaryWriter(str(split_dir), chunk_bytes=opts.chunk_bytes,
                          chunk_index=sum(len(p["chunks"]) for p in parts))
    stat_mods = [m for m in getattr(ds, "modalities", ()) or ()]
    stats: dict[str, BandStats] = {}
    rows: list[dict[str, Any]] = []
    skipped: list[list[str]] = []
    dtypes: dict[str, dict[str, int]] = {}
    where = str(opts.source)
    for idx, item in _read(ds, indices, opts.workers):
        bar.update(1)
        if isinstance(item, str):
            if opts.strict:
                err = DataError(
                    f"{split}[{idx}]: {item} (--strict: fix or remove it, or pack without --strict "
                    "to skip it)"
                )
                err.source_message = item  # the loader's own line (a run packing its data shows it alone)
                raise err
            skipped.append([f"{split}[{idx}]", item])
            continue
        state.schema(item).check(item, where)
        for mod in stat_mods:
            if not isinstance(item.get(mod), np.ndarray):
                continue
            s = BandStats.of(item[mod])
            stats[mod] = stats[mod].merge(s) if mod in stats else s
        rows.append({"split": split, "index": first_index + len(rows), "id": str(item.get("id", idx)),
                     "source_index": int(idx), **_label_columns(item)})
        item, stored = pack_dtypes.narrow(item, stat_mods)
        pack_dtypes.count(dtypes, stored)
        writer.add_item(len(rows) - 1, item)
    if rows:
        writer.done()
    rank_index = split_dir / f"{writer.rank}.{LITDATA_INDEX}"
    written = json.loads(rank_index.read_text()) if rows else {"chunks": [], "config": {}}
    if rows:
        rank_index.unlink()
    labels_file = f"{split}-part-{number:05d}.parquet"
    with atomic_path(state.dir / labels_file) as tmp:
        pd.DataFrame(rows).to_parquet(tmp, index=False)
    sums = {f"{split}/{c['filename']}": _synced_sha256(split_dir / c["filename"]) for c in written["chunks"]}
    return _Part(len(rows), written["chunks"], written["config"], sums,
                 {m: s.to_dict() for m, s in stats.items()}, skipped, labels_file, dtypes)


# ----------------------------------------------------------------------------------------- pack
@dataclass
class PackResult:
    """What :func:`pack` did: the pack folder, its manifest, seconds spent and samples written this run."""

    out: Path
    manifest: dict[str, Any]
    seconds: float
    written: int

    def summary(self) -> str:
        """One line per fact, for the CLI."""
        m = self.manifest
        splits = ", ".join(f"{s} {n}" for s, n in m["splits"].items())
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        unsplit = (f"{m['unsplit']} sample(s) in no split left out (--splits all packs every sample); "
                   if m["unsplit"] else "")
        return (
            f"packed {m['source']['path']} ({m['source']['format']}) into {self.out}: {splits}; "
            f"skipped {m['skipped']} corrupt item(s){' (see skipped.csv)' if m['skipped'] else ''}; {unsplit}"
            f"{self.written} sample(s) this run in {self.seconds:.1f} s ({rate:.1f} samples/s)"
        )


def pack(opts: PackOptions) -> PackResult:
    """Pack ``opts.source`` into ``opts.out`` (see the module); resumable with ``opts.resume``.

    Raises:
        DataError: ``out`` is not empty and not a resumable pack of the same source, an interrupted pack
            without ``resume``, mixed patch sizes, a corrupt item with ``strict``.
    """
    from eoreps.progress import progress

    t0 = time.perf_counter()
    opts.out = Path(opts.out)
    src = opts.source_record()
    if not opts.torchgeo and opts.source != "simeo":
        opts.source_format = src["format"]  # detected once: every split's open below reuses it
    state = _open_state(opts, src)
    if "splits" not in state.data:
        splits, state.data["unsplit"] = _source_splits(opts)
        state.data["splits"] = list(splits)
    splits = tuple(state.data["splits"])
    written = 0
    datasets = {s: opts.open(s) for s in splits}
    _check_lengths(opts, state, {s: len(d) for s, d in datasets.items()})
    total = sum(len(d) for d in datasets.values())
    done = sum(p["n"] + len(p["skipped"]) for s in splits for p in state.parts(s))
    bar = _Bar(progress(range(total - done), desc=f"pack {opts.out.name}", unit="sample"))
    for split, ds in datasets.items():
        parts = state.parts(split)
        _clean_split_dir(opts.out / split, {c["filename"] for p in parts for c in p["chunks"]})
        for number, lo in enumerate(
            range(len(parts) * opts.part_size, len(ds), opts.part_size), start=len(parts)
        ):
            part = _write_part(
                opts, state, ds, split, number, range(lo, min(lo + opts.part_size, len(ds))), bar
            )
            state.commit(split, part.record())
            written += part.n
    bar.close()
    manifest = _finish(opts, state, datasets)
    return PackResult(opts.out, manifest, time.perf_counter() - t0, written)


def _check_lengths(opts: PackOptions, state: _State, lengths: dict[str, int]) -> None:
    """Record the source's split sizes; on resume refuse a source whose sizes changed (the committed parts
    would no longer be the same samples)."""
    from eoreps.io import write_json

    before = state.data.setdefault("lengths", lengths)
    for split, n in lengths.items():
        if before.get(split, n) != n:
            raise DataError(f"{opts.source}: split {split} has {n} samples, {before[split]} when the pack in "
                            f"{opts.out} began; the source changed, pack it into another --out")
    write_json(state.dir / "state.json", state.data)


class _Bar:
    """Drives an :func:`eoreps.progress.progress` iterator one step per sample read."""

    def __init__(self, it: Iterator[Any]) -> None:
        self.it = iter(it)

    def update(self, n: int) -> None:
        for _ in range(n):
            next(self.it, None)

    def close(self) -> None:
        for _ in self.it:
            pass


_MIXED_GRID_FORMATS = ("bigearthnet", "reben")
"""Formats (name prefixes) whose Sentinel-2 bands come at 10, 20 and 60 m and are resampled onto one grid."""


def _modality_record(ds: Any, mod: str, shape: list[int], dtype: str, src: dict[str, Any],
                     stored: dict[str, int] | None = None) -> dict[str, Any]:
    """The manifest's entry of modality ``mod``: band names, ``(C, H, W)`` shape, the storage ``dtype``
    (:mod:`eoreps.data.pack_dtypes`: one dtype or ``mixed``; ``stored_dtypes`` counts the samples of each,
    ``sample_dtype`` is what the loader gave and the reader returns) and the resampling the loader applied:
    to BigEarthNet's 20/60 m S2 bands (onto the 10 m grid), to every image modality when the loader option
    ``size`` asked for another grid; ``none`` otherwise."""
    from eoreps.data.pack_dtypes import describe

    bands = list((getattr(ds, "band_names", {}) or {}).get(mod, ())) or [f"b{i + 1}" for i in range(shape[0])]
    mixed = mod == "s2" and src["format"].startswith(_MIXED_GRID_FORMATS)
    resampled = len(shape) == 3 and (mixed or "size" in src["options"])
    resampling = getattr(ds, "resampling", None) if resampled else None
    return {"bands": bands, "shape": shape, "dtype": describe(stored, dtype), "sample_dtype": dtype,
            "stored_dtypes": dict(stored or {}), "resampling": resampling or "none"}


def _finish(opts: PackOptions, state: _State, datasets: dict[str, Any]) -> dict[str, Any]:
    """Write each split's ``index.json``, ``labels.parquet``, ``skipped.csv`` and last the manifest; remove
    the state."""
    import pandas as pd

    import eoreps
    from eoreps.data.pack_dtypes import merge as merge_dtypes
    from eoreps.data.pack_stats import merge_all
    from eoreps.io import atomic_write_text, write_json

    out = opts.out
    checksums: dict[str, str] = {}
    skipped: list[list[str]] = []
    frames = []
    for split in datasets:
        parts = state.parts(split)
        chunks = [c for p in parts for c in p["chunks"]]
        config = next((p["config"] for p in parts if p["chunks"]), None)
        if config is None:
            continue
        formats = {json.dumps(p["config"].get("data_format")) for p in parts if p["chunks"]}
        if len(formats) > 1:
            raise DataError(
                f"{out / split}: the parts were written with different sample layouts "
                f"({', '.join(formats)}); the source's samples differ in type, pack it into another --out"
            )
        write_json(
            out / split / LITDATA_INDEX, {"chunks": chunks, "config": config, "updated_at": str(time.time())}
        )
        for p in parts:
            checksums.update(p["checksums"])
            skipped.extend(p["skipped"])
            if p["n"]:
                frames.append(pd.read_parquet(state.dir / p["labels_file"]))
    labels = (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["split", "index", "id"])
    )
    y_cols = [c for c in labels.columns if c.startswith("y_")]
    labels[y_cols] = labels[y_cols].fillna(0).astype("int8")
    from eoreps.io import atomic_path

    with atomic_path(out / "labels.parquet") as tmp:
        labels.to_parquet(tmp, index=False)
    buf = io.StringIO()
    csv.writer(buf).writerows([["source_item", "reason"], *skipped])
    atomic_write_text(out / "skipped.csv", buf.getvalue())
    first = next(iter(datasets.values()))
    stats = merge_all([p["stats"] for s in datasets for p in state.parts(s)])
    train_stats = merge_all([p["stats"] for p in state.parts("train")]) if "train" in datasets else {}
    mask = getattr(first, "mask_classes", None)
    arrays = state.data.get("schema", {}).get("arrays", {})
    stored = merge_dtypes([p.get("dtypes") or {} for s in datasets for p in state.parts(s)])
    import litdata

    manifest = {
        "format": FORMAT, "version": FORMAT_VERSION, "eoreps_version": eoreps.__version__, "engine": ENGINE,
        "litdata_version": litdata.__version__, "source": state.data["source"],
        "modalities": {
            m: _modality_record(first, m, *arrays[m], state.data["source"], stored.get(m)) for m in stats
        },
        "task": getattr(first, "task", "none"), "classes": list(getattr(first, "classes", ()) or ()),
        # what the source's own reader says about it (id column, split rule ...): runs on the pack report it
        "source_description": describe_dataset(first),
        "mask": {"classes": list(mask), "codes": list(first.mask_codes.codes)} if mask else None,
        "splits": {s: sum(p["n"] for p in state.parts(s)) for s in datasets},
        "stats": {m: s.summary() for m, s in stats.items()},
        # the training split's own (normalisation uses the training split's statistics, never val/test's)
        "train_stats": {m: s.summary() for m, s in train_stats.items()} or None,
        "skipped": len(skipped), "unsplit": state.data.get("unsplit", 0), "checksums": checksums,
        **({"skipped_nodata": {s: int(d.num_skipped_nodata) for s, d in datasets.items()}}
           if hasattr(first, "num_skipped_nodata") else {}),  # skip_nodata=True (PackedDataset reports it)
        "sizes": {rel: (out / rel).stat().st_size for rel in checksums},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json(out / MANIFEST, manifest)
    shutil.rmtree(state.dir)
    return manifest


# ---------------------------------------------------------------------------------------------- verify
@dataclass
class VerifyResult:
    """What :func:`verify_pack` checked: samples read per split and source samples compared."""

    path: Path
    splits: dict[str, int]
    compared: int

    def summary(self) -> str:
        """One line for the CLI."""
        counts = ", ".join(f"{s} {n}" for s, n in self.splits.items())
        return (f"{self.path}: pack OK: checksums match, every chunk read ({counts} samples)"
                f"{f', {self.compared} sample(s) identical to the source' if self.compared else ''}")


def _source_options(man: dict[str, Any], out: Path) -> PackOptions:
    """:class:`PackOptions` that re-open the source recorded in the manifest ``man``."""
    src = man["source"]
    kw = dict(src.get("options") or {})
    mods = tuple(kw.pop("modalities", ()) or ())
    tg = src["format"].split(":", 1)[1] if src["format"].startswith("torchgeo:") else ""
    return PackOptions(source=src["path"], out=out, modalities=mods, torchgeo=tg, options=kw,
                       seed=int(src.get("seed", 0)))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    return bool(a == b)


def verify_pack(path: str | Path, samples: int = 0, seed: int = 0) -> VerifyResult:
    """Re-read a pack: the manifest (:func:`check_manifest` with checksums), every sample of every
    split (count and ids against the manifest and ``labels.parquet``), and ``samples`` random
    samples against the source.

    Raises:
        DataError: anything that differs, one line naming the file or sample.
    """
    import pandas as pd
    from litdata import StreamingDataset

    from eoreps.progress import progress

    root = Path(path)
    man = check_manifest(root, checksums=True)
    labels = pd.read_parquet(root / "labels.parquet")
    counts: dict[str, int] = {}
    for split, n in man["splits"].items():
        ds = StreamingDataset(str(root / split))
        ids = labels.loc[labels["split"] == split].sort_values("index")["id"].tolist()
        if len(ds) != n or len(ids) != n:
            raise DataError(f"{root / split}: {len(ds)} samples in the chunks, {len(ids)} in labels.parquet, "
                            f"{n} in {MANIFEST}; the pack is damaged, re-pack the source")
        for i in progress(range(n), desc=f"verify {split}", unit="sample"):
            got = ds[i].get("id")
            if str(got) != ids[i]:
                raise DataError(f"{root / split}: sample {i} is {got!r}, labels.parquet says {ids[i]!r}; "
                                "the pack is damaged, re-pack the source")
        counts[split] = n
    compared = _compare_with_source(root, man, labels, samples, seed) if samples else 0
    return VerifyResult(root, counts, compared)


def _compare_with_source(root: Path, man: dict[str, Any], labels: Any, samples: int, seed: int) -> int:
    """Compare ``samples`` random packed samples with the source's, key by key; return how many."""
    from litdata import StreamingDataset

    opts = _source_options(man, root)
    rng = np.random.default_rng(seed)
    rows = labels.iloc[rng.choice(len(labels), size=min(samples, len(labels)), replace=False)]
    opened: dict[str, Any] = {}
    for row in rows.itertuples():
        if row.split not in opened:
            opened[row.split] = (opts.open(row.split), StreamingDataset(str(root / row.split)))
        src_ds, packed_ds = opened[row.split]
        want, got = _to_item(src_ds[int(row.source_index)]), packed_ds[int(row.index)]
        for key, value in want.items():
            if key not in got or not _same(got[key], value):
                raise DataError(
                    f"{root / row.split}: sample {row.id} differs from the source in {key!r}; the "
                    "source changed since packing or the pack is damaged, re-pack it"
                )
    return len(rows)
