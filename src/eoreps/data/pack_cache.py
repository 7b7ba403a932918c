"""Pack a source once into the cache, so every run streams it (``loader="stream"``, the default).

``pretrain``, ``fit``, ``evaluate``, ``study`` and ``demo`` take ``loader``: ``"stream"`` reads a packed
archive (:mod:`eoreps.data.datasets.packed`) through the same code that reads a pack the user made with
``eoreps data pack``; a source that is not packed yet (``simeo``, a SimEO folder, the ``.npz``, a GeoTIFF
folder, BigEarthNet folders, reBEN) is packed first, once, by :func:`packed_source`. ``"memory"`` keeps the
in-memory fast path for small sources (same samples, same run interface).

The cached pack lives in ``$EOREPS_CACHE/packs/<key>`` (else ``~/.cache/eoreps/packs/<key>``), where
``key`` hashes what decides the packed content: the source's absolute path and format, its loader options,
the run seed where the format draws a seeded split (GeoTIFF folders without a split column), the
modalities where they decide which samples exist (BigEarthNet v1 pairing; a GeoTIFF folder's no-data
check applies to the modalities read), a stamp of the source (size and modification time of the path
and a digest of the relative path, size and modification time of every file and folder below it, nested
ones included, so an edited source is packed again: :func:`eoreps.data.source_stamp.source_stamp`) and
the pack format and eoreps versions. A process packs under a file lock into ``<key>.partial`` (resumed after
a kill; renamed when the kill came after its manifest, started afresh when it came before its resume state)
and renames it to ``<key>`` when complete, so concurrent runs (DDP ranks, parallel tests) pack a source
once and never read a half-written pack. A cached pack whose chunk was damaged stops the run with one line
naming the chunk and the folder to delete. Cached packs of sources that no longer exist are removed when a
new pack is made, unless another process holds their lock.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eoreps.data.source_stamp import source_stamp
from eoreps.errors import DataError, unknown_name

if TYPE_CHECKING:
    from eoreps.data.formats import DataFormat

LOADERS = ("stream", "memory")
LOADER_HELP = ("stream: read a packed archive (other sources are packed once into the cache, "
               "$EOREPS_CACHE/packs); memory: hold the data in memory (fast path for small sources).")
_PARTIAL = ".partial"  # suffix of a pack being written (renamed to its key when complete)
_CACHE_VERSION = 3  # bumped when what a cached pack holds changes (2: train stats, 3: source description)


def check_loader(loader: str) -> str:
    """``loader`` if it is one of :data:`LOADERS`, else a one-line :class:`ConfigError`."""
    if loader not in LOADERS:
        raise unknown_name("loader", loader, LOADERS)
    return loader


def is_packed(data: str | Path) -> bool:
    """True when ``data`` is a pack folder (written by ``eoreps data pack`` or the cache)."""
    from eoreps.data.pack_manifest import MANIFEST

    return str(data) != "simeo" and (Path(data) / MANIFEST).is_file()


@dataclass
class PackedSource:
    """What a run reads under ``loader="stream"``.

    Attributes:
        data: the pack folder to open (``--data`` itself when it is a pack).
        options: loader options to open it with (empty: the source's options were applied when packing).
        source: what the user gave (``--data``), recorded in outputs.
        cached: True when the pack was made (or reused) from the cache rather than given by the user.
    """

    data: str
    options: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    cached: bool = False


def _source_format(source: str) -> DataFormat:
    """The registered format of ``source`` (a missing or unknown source is its one-line error)."""
    from eoreps.data.formats import FORMAT_REGISTRY, detect_format

    return FORMAT_REGISTRY.get(detect_format(Path(source).resolve()))


def cache_key(source: str, options: dict[str, Any], seed: int, modalities: tuple[str, ...],
              fmt: DataFormat | None = None) -> str:
    """The cache folder name of a source (see the module docstring); ``fmt``: its format, when the caller
    detected it already."""
    import eoreps
    from eoreps.data.pack_manifest import FORMAT_VERSION
    from eoreps.digest import digest

    path = Path(source).resolve()
    fmt = fmt or _source_format(source)  # first: a missing or unknown source is its one-line error
    ident = {"path": str(path), "format": fmt.name, "options": options, "stamp": source_stamp(path),
             "pack": FORMAT_VERSION, "eoreps": eoreps.__version__.split(".")[:2], "cache": _CACHE_VERSION}
    if fmt.seeded_split:
        ident["seed"] = seed
    if fmt.paired_modalities:
        ident["modalities"] = sorted(modalities)
    return digest(ident, 20)


def _simeo_folder(data: str, simeo_n: int | None) -> str:
    """``"simeo"`` as the cached SimEO folder it stands for (``simeo_n`` patches; default: the loader's)."""
    if data != "simeo":
        return data
    from eoreps.data.datasets.simeo import DEFAULT_N
    from eoreps.data.simeo.io import cached_simeo

    return str(cached_simeo(DEFAULT_N if simeo_n is None else simeo_n, seed=0))


def packed_source(data: str, options: dict[str, Any] | None = None, seed: int = 0,
                  modalities: tuple[str, ...] | list[str] = (), simeo_n: int | None = None) -> PackedSource:
    """The pack a ``loader="stream"`` run reads for ``data``: ``data`` itself when it is a pack, else the
    cached pack of it (packed now when missing). ``simeo_n``: patches of ``data="simeo"``."""
    from eoreps.data.pack_manifest import check_manifest
    from eoreps.digest import cache_dir

    if is_packed(data):
        return PackedSource(str(data), dict(options or {}), str(data))
    source = _simeo_folder(str(data), simeo_n)
    opts = dict(options or {})
    mods = tuple(modalities)
    fmt = _source_format(source)  # once per run: the key and the packing both read it
    root = cache_dir("packs") / cache_key(source, opts, seed, mods, fmt)
    if not is_packed(root):
        _pack_locked(source, root, opts, seed, mods if fmt.paired_modalities else (), fmt.name)
    try:
        check_manifest(root)
    except DataError as e:
        raise DataError(f"{str(e).rstrip('.')} (a cached pack of {data}: delete {root} and the next run "
                        "packs it again)") from None
    return PackedSource(str(root), {}, str(data), cached=True)


def run_source(run: Any, options: dict[str, Any] | None = None, simeo_n: int | None = None
               ) -> tuple[str, dict[str, Any]]:
    """``(data, loader options)`` a run opens, for a run config with ``data``, ``data_options``, ``seed``,
    ``modalities`` and ``loader``: with ``loader="stream"`` the pack of ``data`` (:func:`packed_source`),
    else ``data`` and its options. ``options`` replaces ``data_options`` (e.g. SimEO's ``task``); the answer
    is kept on ``run``."""
    if "_source" not in run.__dict__:
        opts = dict(run.data_options if options is None else options)
        if check_loader(run.loader) == "stream":
            src = packed_source(run.data, opts, run.seed, tuple(run.modalities), simeo_n=simeo_n)
            run.__dict__["_source"] = (src.data, src.options)
        else:
            run.__dict__["_source"] = (run.data, opts)
    return run.__dict__["_source"]


def _pack_locked(source: str, root: Path, options: dict[str, Any], seed: int, mods: tuple[str, ...],
                 fmt: str = "") -> None:
    """Pack ``source`` into ``root`` under a lock: ``root.partial`` first (resumed after a kill), then
    renamed. ``mods``: the modalities to pack, where they decide which samples exist (else empty); ``fmt``:
    the source's format name, detected once by the caller (empty: the pack detects it)."""
    from filelock import FileLock  # a dependency of torch and litdata

    from eoreps.data.pack import PackOptions, pack
    from eoreps.data.pack_manifest import STATE_DIR
    from eoreps.progress import progress_enabled

    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(_lock_path(root)):
        if is_packed(root):  # another process packed it while this one waited
            return
        _prune(root.parent)
        partial = root.with_name(root.name + _PARTIAL)
        if _finished(partial):  # killed after writing the manifest, before the rename below
            _publish(partial, root)
            return
        resume = (partial / STATE_DIR / "state.json").is_file()
        if partial.exists() and not resume:  # killed before the resume state was written: nothing to keep
            shutil.rmtree(partial)
        if progress_enabled():  # with the pack's progress bar; quiet like it under EOREPS_NO_PROGRESS
            print(f"eoreps: packing {source} once into {root} (later runs reuse it; loader=memory skips "
                  "this)", file=sys.stderr)
        # strict: a corrupt source item or an all-no-data sample stops the run with one line naming it, as
        # reading the source directly would (a user's explicit `eoreps data pack` may skip and list them)
        opts = PackOptions(source=source, out=partial, options=options, seed=seed, resume=resume, strict=True,
                           modalities=mods, source_format=fmt)
        try:
            pack(opts)
        except DataError as e:  # a bad source item: the loader's own line, as reading the source shows it
            raise DataError(getattr(e, "source_message", None) or str(e)) from None
        _publish(partial, root)


def _lock_path(root: Path) -> str:
    """The file lock of the cached pack ``root`` (``<key>``), which also guards ``<key>.partial``."""
    return str(root) + ".lock"


def _finished(partial: Path) -> bool:
    """True when ``partial`` holds a complete, valid pack (its manifest was written; a resume state left
    beside it is removed); a damaged one is removed, to be packed again."""
    from eoreps.data.pack_manifest import STATE_DIR, check_manifest

    if not is_packed(partial):
        return False
    try:
        check_manifest(partial)
    except DataError:
        shutil.rmtree(partial)
        return False
    shutil.rmtree(partial / STATE_DIR, ignore_errors=True)  # killed between the manifest and its removal
    return True


def _publish(partial: Path, root: Path) -> None:
    """Rename the complete pack ``partial`` to ``root`` (replacing an unreadable leftover of an old pack)."""
    if root.exists():
        shutil.rmtree(root)
    partial.rename(root)


def _prune(folder: Path) -> None:
    """Remove cached packs, complete or interrupted, whose source no longer exists (tests and users pack
    temporary folders). A pack whose lock another process holds (packing it, or waiting to) is left alone."""
    from filelock import FileLock, Timeout

    from eoreps.data.pack_manifest import MANIFEST, STATE_DIR
    from eoreps.io import read_json

    for record in [*folder.glob(f"*/{MANIFEST}"), *folder.glob(f"*/{STATE_DIR}/state.json")]:
        pack_dir = record.parent if record.name == MANIFEST else record.parent.parent
        try:
            src = (read_json(record).get("source") or {}).get("path", "")
        except (DataError, OSError, AttributeError):
            continue
        if src and src != "simeo" and not Path(src).exists():
            key = pack_dir.name.removesuffix(_PARTIAL)
            try:
                with FileLock(_lock_path(pack_dir.with_name(key)), timeout=0):
                    shutil.rmtree(pack_dir, ignore_errors=True)
            except Timeout:
                continue


__all__ = ["LOADERS", "LOADER_HELP", "PackedSource", "cache_key", "check_loader", "is_packed",
           "packed_source", "run_source"]
