"""A stamp of a source file or folder that changes when anything in it changes (the pack cache's key:
:func:`eoreps.data.pack_cache.cache_key`).

It hashes the size and modification time of every file and folder below the source, at any depth, by
their relative paths; reading the contents would cost as much as packing. Measured
(``benchmarks/pack_stamp.py``, warm page cache): see ``docs/data.md``.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

from eoreps.errors import DataError

__all__ = ["source_stamp"]


def source_stamp(path: Path) -> list[Any]:
    """Size and modification time of ``path`` and, for a folder, a digest of the relative path, size and
    modification time of every entry below it, at any depth: a file rewritten inside a sub-folder (a
    BigEarthNet patch's tif) changes neither its parent's entry nor, on most file systems, the parent's
    modification time, so the direct entries alone kept a stale pack. An ``os.scandir`` walk hashed as it
    goes (:func:`_hash_tree`), not a list of the entries in the key; symbolic links are followed (a linked
    folder is walked once)."""
    try:
        st = path.stat()
        tree = hashlib.blake2b(digest_size=16)
        if stat.S_ISDIR(st.st_mode):
            _hash_tree(path, tree, {(st.st_dev, st.st_ino)})
        return [st.st_size, st.st_mtime_ns, tree.hexdigest()]
    except OSError as e:
        where = e.filename or path
        raise DataError(f"{where}: cannot be read ({e.strerror}); check the path") from None


def _scan(folder: str, rel: str) -> tuple[str, list[tuple[str, str, tuple[int, int]]]]:
    """The ``relative path, size, mtime`` lines of the entries of ``folder`` (relative path ``rel``) in name
    order, and its sub-folders ``(path, relative path, (device, inode))``."""
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    lines, below = [], []
    for e in entries:
        try:
            st = e.stat()  # follows a link: the linked file's own size and time
        except FileNotFoundError:  # a dangling link: stamped as the link itself
            st = e.stat(follow_symlinks=False)
        lines.append(f"{rel}{e.name}\0{st.st_size}\0{st.st_mtime_ns}\n")
        if stat.S_ISDIR(st.st_mode):
            below.append((e.path, f"{rel}{e.name}/", (st.st_dev, st.st_ino)))
    return "".join(lines), below


def _hash_tree(root: Path, tree: Any, seen: set[tuple[int, int]]) -> None:
    """Feed ``tree`` (a hashlib object) with the lines of :func:`_scan` of every folder below ``root``, depth
    first in name order (deterministic whatever the directory order); folders in ``seen`` (device, inode)
    are not walked again (symbolic-link loops). One thread: the walk is bound by ``stat`` calls, and a
    thread pool measured 2x slower on the 2-core machine (``benchmarks/pack_stamp.py``, docs/data.md)."""
    stack = [(str(root), "")]
    while stack:
        lines, below = _scan(*stack.pop())
        tree.update(lines.encode())
        todo = []
        for path, rel, key in below:
            if key not in seen:
                seen.add(key)
                todo.append((path, rel))
        stack.extend(reversed(todo))  # the first sub-folder is walked next
