"""Written files follow the user's umask (``tempfile.mkstemp`` alone would make them 0600)."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from eoreps.io import atomic_write_text, current_umask, write_json


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_atomic_writes_follow_umask(tmp_path, umask):
    assert current_umask() == umask
    atomic_write_text(tmp_path / "a.txt", "x")
    write_json(tmp_path / "results.json", {"a": 1})
    expected = 0o666 & ~umask
    assert _mode(tmp_path / "a.txt") == expected
    assert _mode(tmp_path / "results.json") == expected
    assert current_umask() == umask  # reading it does not change it


def test_safetensors_backbone_export_follows_umask(tmp_path, umask):
    from safetensors.torch import save_file

    from eoreps.io import atomic_path

    with atomic_path(tmp_path / "backbone.safetensors") as tmp:
        save_file({"w": torch.zeros(2)}, str(tmp))
    assert _mode(tmp_path / "backbone.safetensors") == 0o666 & ~umask


def test_simeo_folder_follows_umask(tmp_path, umask):
    from eoreps.data.simeo.io import write_simeo

    out = write_simeo(tmp_path / "sim", n=8, seed=0)
    assert _mode(out) == 0o777 & ~umask  # mkdtemp alone gives 0700
    assert _mode(out / "meta.json") == 0o666 & ~umask
