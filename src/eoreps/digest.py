"""One place for content hashes and cache folders.

* :func:`digest` -- short stable hash of a JSON-able description (study cell hashes, pretraining record
  hashes, feature/statistics cache keys). The string is ``sha256(json.dumps(obj, sort_keys=True,
  default=str))`` cut to ``length`` hex digits, exactly what the call sites computed before this module
  existed, so results already on disk are still found (``tests/test_digest.py`` checks every call site
  against its old formula).
* :func:`bytes_digest` -- the same for raw bytes (arrays, source text).
* :func:`file_sha256` -- streamed hex SHA-256 of a file (zoo shard checksums, backbone identities).
* :func:`cache_dir` -- ``$EOREPS_CACHE/<kind>`` or ``~/.cache/eoreps/<kind>``.

This module sits at the bottom of the layers: it imports nothing from eoreps.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["bytes_digest", "cache_dir", "digest", "file_sha256"]


def bytes_digest(chunks: bytes | Iterable[bytes], length: int | None = 16, algorithm: str = "sha256") -> str:
    """Hex ``algorithm`` hash of ``chunks`` (one ``bytes`` or several, hashed in order), cut to ``length``
    characters (``None``: the full hex string)."""
    h = hashlib.new(algorithm)
    for chunk in [chunks] if isinstance(chunks, bytes | bytearray | memoryview) else chunks:
        h.update(chunk)
    return h.hexdigest()[:length] if length is not None else h.hexdigest()


def digest(obj: Any, length: int = 16, algorithm: str = "sha256") -> str:
    """Short stable hash of a JSON-able ``obj`` (keys sorted; non-JSON values through ``str``)."""
    return bytes_digest(json.dumps(obj, sort_keys=True, default=str).encode(), length, algorithm)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    with open(path, "rb") as f:
        return bytes_digest(iter(lambda: f.read(1 << 20), b""), None)


def cache_dir(kind: str) -> Path:
    """The cache folder for ``kind`` (``stats``, ``simeo``, ``kernels``, ...): ``$EOREPS_CACHE/<kind>`` when
    the variable is set, else ``~/.cache/eoreps/<kind>``. Not created here."""
    base = os.environ.get("EOREPS_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "eoreps") / kind
