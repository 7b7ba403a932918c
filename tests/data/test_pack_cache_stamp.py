"""The cached pack's key sees edits anywhere in the source tree: a tif
rewritten inside a patch folder packs the source again; an untouched tree keeps its pack
(:func:`eoreps.data.source_stamp.source_stamp`)."""

from __future__ import annotations

import os

import pytest

from eoreps.data.formats import FORMAT_REGISTRY
from eoreps.data.pack_cache import cache_key
from eoreps.errors import DataError

FMT = FORMAT_REGISTRY.get("simeo")  # given, so the key reads the stamp, not the format detection


def _key(root) -> str:
    return cache_key(str(root), {}, 0, (), FMT)


def _tree(root):
    """A BigEarthNet-like source: patch folders of band files, one level down and two."""
    for patch in ("S2A_1", "S2A_2"):
        for band in ("B02", "B03"):
            (root / "s2" / patch).mkdir(parents=True, exist_ok=True)
            (root / "s2" / patch / f"{patch}_{band}.tif").write_bytes(b"\x00" * 64)
    (root / "labels.json").write_text("{}")


def test_a_nested_edit_changes_the_key_an_untouched_tree_keeps_it(tmp_path):
    root = tmp_path / "src"
    _tree(root)
    key = _key(root)
    assert _key(root) == key  # untouched: the same pack
    tif = root / "s2" / "S2A_2" / "S2A_2_B03.tif"
    folders = [root, root / "s2", tif.parent]
    times = {d: d.stat().st_mtime_ns for d in folders}
    tif.write_bytes(b"\x01" * 64)  # rewritten in place: same name, same size
    st = tif.stat()
    os.utime(tif, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))  # a coarse clock still moves
    for d, t in times.items():  # and no folder's own time moved (as on most file systems)
        os.utime(d, ns=(t, t))
    edited = _key(root)
    assert edited != key and _key(root) == edited
    (tif.parent / "S2A_2_B04.tif").write_bytes(b"")  # a file added two levels down
    assert _key(root) not in (key, edited)


def test_links_are_followed_once_and_a_dangling_one_is_stamped(tmp_path):
    root = tmp_path / "src"
    _tree(root)
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "x.tif").write_bytes(b"\x00")
    (root / "linked").symlink_to(other, target_is_directory=True)
    (root / "s2" / "loop").symlink_to(root, target_is_directory=True)  # not walked forever
    (root / "gone").symlink_to(tmp_path / "missing")
    key = _key(root)
    (other / "x.tif").write_bytes(b"\x00\x01")  # an edit behind a link counts
    assert _key(root) != key


def test_a_file_source_is_stamped_by_its_size_and_time(tmp_path):
    src = tmp_path / "data.npz"
    src.write_bytes(b"\x00" * 8)
    key = _key(src)
    assert _key(src) == key
    src.write_bytes(b"\x00" * 9)
    assert _key(src) != key


def test_an_unreadable_sub_folder_is_one_line_naming_it(tmp_path, monkeypatch):
    import eoreps.data.source_stamp as S

    root = tmp_path / "src"
    _tree(root)
    locked = str(root / "s2" / "S2A_1")
    real = os.scandir

    def scandir(path):
        if str(path) == locked:
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(S.os, "scandir", scandir)
    with pytest.raises(DataError) as e:
        S.source_stamp(root)
    assert str(e.value) == f"{locked}: cannot be read (Permission denied); check the path"
