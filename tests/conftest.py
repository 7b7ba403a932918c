"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("EOREPS_NO_PROGRESS", "1")
# `--precision auto` resolves to fp32 in the suite whatever the CPU (exact numbers; eoreps.precision);
# tests of the detection itself delete it
os.environ.setdefault("EOREPS_AUTO_PRECISION", "fp32")
# `--num-workers auto` resolves to 0 loader workers whatever the machine's cores (no LitData worker start-up
# for tiny data on a many-core CI box; eoreps.data.loader_workers); tests of the rule itself delete it
os.environ.setdefault("EOREPS_LOADER_WORKERS", "0")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; skips the test when absent (a user's fresh clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (CI has it)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _torch_threads():
    """Keep tests on the 2 cores this project is sized for."""
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield



@pytest.fixture
def make_read_only(monkeypatch):
    """``make_read_only(folder, how)``: make creating files in ``folder`` fail as it does for a user.

    ``how="mode"``: mode bits 0o555, and ``os.access`` answers for that folder as it does for an
    ordinary user (tests run as root, which ignores mode bits); ``how="erofs"``: a read-only file
    system: ``os.access`` says yes (as it does for root) but creating a file there fails with EROFS,
    the real write that the check falls back to.
    """
    import errno
    import tempfile

    chmodded: list[Path] = []

    def inside(path: str | os.PathLike, folder: Path) -> bool:
        p = Path(path).resolve()
        return p == folder or folder in p.parents

    def apply(folder: Path, how: str = "erofs") -> None:
        folder = folder.resolve()
        if how == "mode":
            folder.chmod(0o555)
            chmodded.append(folder)
            real_access = os.access
            monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: (
                False if inside(p, folder) and mode & os.W_OK else real_access(p, mode, *a, **k)))
            return
        real_mkstemp = tempfile.mkstemp

        def mkstemp(*args, dir=None, **kw):  # noqa: A002 - tempfile's own keyword
            if dir is not None and inside(dir, folder):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
            return real_mkstemp(*args, dir=dir, **kw)

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)

    yield apply
    for folder in chmodded:
        folder.chmod(0o755)


@pytest.fixture
def bench_script():
    """``bench_script("name")`` imports ``benchmarks/name.py`` as a module (the scripts are not a package)."""
    import importlib.util
    import sys

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod  # dataclasses in the script look their module up
        spec.loader.exec_module(mod)
        return mod

    return load


@pytest.fixture
def bench_fails():
    """``bench_fails("name", *args)`` runs ``benchmarks/name.py`` in a subprocess, asserts it failed with
    exit 2 and one stderr line (no traceback), and returns ``(that line, stdout)``."""
    import subprocess
    import sys

    def run(name: str, *args: str) -> tuple[str, str]:
        script = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        r = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        return lines[0], r.stdout

    return run
