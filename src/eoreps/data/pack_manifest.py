"""The manifest of a pack folder (``eoreps_pack.json``): its names and :func:`check_manifest`.

Kept apart from the writer (:mod:`eoreps.data.pack`) so the reader (:mod:`eoreps.data.datasets.packed`,
opened through :mod:`eoreps.data.formats`) does not import the writer, which opens sources through
:mod:`eoreps.data.formats` itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eoreps.errors import DataError

MANIFEST = "eoreps_pack.json"
STATE_DIR = ".pack_state"
FORMAT = "eoreps-pack"
FORMAT_VERSION = 1
ENGINE = "litdata"
SPLITS = ("train", "val", "test")
LITDATA_INDEX = "index.json"


# ----------------------------------------------------------------------------------------- the manifest
def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(str(version).split(".")[:2])


def check_manifest(path: str | Path, checksums: bool = False) -> dict[str, Any]:
    """Load and validate the manifest of the pack folder ``path``; return it as a dict.

    Checks, each failure a one-line :class:`~eoreps.errors.DataError` naming the file and the fix:

    * ``eoreps_pack.json`` exists (missing: an interrupted pack, resume it with ``--resume``, or not a pack);
    * it is an ``eoreps-pack`` of format version :data:`FORMAT_VERSION`, written by this eoreps major.minor
      version (another one: re-pack with this version);
    * every split folder has LitData's ``index.json`` and every chunk the manifest lists exists with its
      recorded size (a missing or truncated chunk names the chunk);
    * with ``checksums=True`` also each chunk's SHA-256 (reads every byte: ``eoreps data pack --verify``).

    Args:
        path: the pack folder (``--out`` of ``eoreps data pack``).
        checksums: also compare the SHA-256 of every chunk with the manifest.
    """
    import eoreps
    from eoreps.digest import file_sha256

    root = Path(path)
    man_path = root / MANIFEST
    if not man_path.is_file():
        if (root / STATE_DIR).is_dir():
            raise DataError(f"{man_path}: missing, the pack in {root} was interrupted; finish it with "
                            f"'eoreps data pack SRC --out {root} --resume'")
        raise DataError(f"{man_path}: not found, {root} is not an eoreps pack; create one with "
                        f"'eoreps data pack SRC --out {root}'")
    try:
        man = json.loads(man_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{man_path}: not valid JSON ({e}); the pack is damaged, re-pack it") from None
    if not isinstance(man, dict) or man.get("format") != FORMAT:
        raise DataError(
            f"{man_path}: not an eoreps pack manifest (format "
            f"{man.get('format') if isinstance(man, dict) else None!r}); "
            "re-pack the source with 'eoreps data pack'"
        )
    if man.get("version") != FORMAT_VERSION:
        raise DataError(f"{man_path}: pack format version {man.get('version')!r}, this eoreps reads version "
                        f"{FORMAT_VERSION}; re-pack the source with this eoreps ('eoreps data pack')")
    if _major_minor(man.get("eoreps_version", "")) != _major_minor(eoreps.__version__):
        raise DataError(f"{man_path}: written by eoreps {man.get('eoreps_version')!r}, this is eoreps "
                        f"{eoreps.__version__}; re-pack the source with this version ('eoreps data pack')")
    for key in ("splits", "checksums", "sizes", "modalities"):
        if not isinstance(man.get(key), dict):
            raise DataError(f"{man_path}: no {key!r} entry; the manifest is damaged, re-pack the source")
    for split, n in man["splits"].items():
        if n and not (root / split / LITDATA_INDEX).is_file():
            raise DataError(
                f"{root / split / LITDATA_INDEX}: missing; the pack is damaged, re-pack the source"
            )
    for rel, size in man["sizes"].items():
        chunk = root / rel
        if not chunk.is_file():
            raise DataError(f"{chunk}: chunk missing; restore it or re-pack the source ('eoreps data pack')")
        if chunk.stat().st_size != size:
            raise DataError(
                f"{chunk}: truncated or changed chunk ({chunk.stat().st_size} bytes, manifest says "
                f"{size}); restore it or re-pack the source"
            )
        if checksums and file_sha256(chunk) != man["checksums"].get(rel):
            raise DataError(
                f"{chunk}: checksum differs from {man_path}; the chunk is corrupt, re-pack the source"
            )
    return man
