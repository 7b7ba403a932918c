"""Small I/O helpers: atomic writes (a kill never leaves a half-written file) and JSON."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (``/proc/self/status`` on Linux);
    elsewhere it is set and restored at once under a lock."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def apply_umask(path: str | Path, directory: bool = False) -> None:
    """Give ``path`` the mode a plain ``open()`` (or ``mkdir``) would: ``0o666`` (``0o777`` for a
    directory) less the umask. ``tempfile.mkstemp``/``mkdtemp`` create 0600/0700 files, which would make
    results unreadable to the user's group after the atomic rename."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    Example::

        with atomic_path(out / "weights.safetensors") as tmp:
            safetensors.torch.save_file(tensors, str(tmp))
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        apply_umask(tmp_path)  # after the writer: some (safetensors) recreate the file as 0600
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as pretty JSON atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    """Read JSON; a missing or malformed file raises a one-line :class:`eoreps.errors.DataError`."""
    from eoreps.errors import DataError

    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: file not found")
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{p}: not valid JSON ({e}); the file is corrupt, regenerate it") from None


def can_write_in(folder: Path) -> bool:
    """Whether a file can be created in the existing ``folder``: ``os.access`` first (cheap, honours mode
    bits for ordinary users), then a real temporary file, because root ignores mode bits but not a
    read-only file system, and ACLs or network file systems can say yes to ``os.access`` and still refuse."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        fd, tmp = tempfile.mkstemp(prefix=".eoreps-write-check.", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(tmp)
    return True


def _nearest_existing(p: Path) -> Path:
    """``p`` or, if it does not exist, its nearest existing ancestor (a link counts as existing)."""
    while not os.path.lexists(p) and p.parent != p:
        p = p.parent
    return p


def check_out_dir(path: str | Path, what: str = "--out") -> Path:
    """Refuse, before any work, an output folder that cannot be created or written.

    ``path`` may exist (a folder) or not (it is created later by the command): the nearest existing
    folder on its parent chain must be writable. A path that is a file, or whose parent chain runs into
    a file, raises a one-line :class:`eoreps.errors.DataError` naming it and the option ``what``.
    Nothing is created.
    """
    from eoreps.errors import DataError

    p = Path(path)
    probe = _nearest_existing(p)
    if not probe.is_dir():
        if probe == p:
            raise DataError(f"{p}: {what} is an existing file, not a folder; pass a folder path")
        raise DataError(f"{p}: cannot create the {what} folder because {probe} is a file; pass another path")
    if not can_write_in(probe):
        where = "" if probe == p else f" (nearest existing folder: {probe})"
        raise DataError(f"{p}: {what} folder is not writable{where}; pass a writable folder to {what}")
    return p


def check_out_file(path: str | Path, what: str = "--out") -> Path:
    """:func:`check_out_dir` for an output *file*: refuse, before any work, a path that is an existing folder,
    one whose parent chain runs into a file, or one in a folder that cannot be written (one-line
    :class:`eoreps.errors.DataError` naming the path and the option ``what``). Nothing is created."""
    from eoreps.errors import DataError

    p = Path(path)
    if p.is_dir():
        raise DataError(f"{p}: {what} is an existing folder, not a file; pass a file path")
    probe = _nearest_existing(p.parent)
    if not probe.is_dir():
        raise DataError(f"{p}: cannot write the {what} file because {probe} is a file; pass another path")
    if not can_write_in(probe):
        raise DataError(f"{p}: the folder of {what} is not writable (nearest existing folder: {probe}); "
                        f"pass a writable path to {what}")
    return p
