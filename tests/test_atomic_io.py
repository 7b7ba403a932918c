"""Atomic writes never leave partial files; JSON errors are one line."""

from __future__ import annotations

import pytest

from eoreps.errors import DataError
from eoreps.io import atomic_path, atomic_write_text, read_json, write_json


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "a" / "f.txt"
    atomic_write_text(p, "one")
    atomic_write_text(p, "two")
    assert p.read_text() == "two"
    assert sorted(x.name for x in p.parent.iterdir()) == ["f.txt"]


def test_failed_write_keeps_old_file(tmp_path):
    p = tmp_path / "f.txt"
    atomic_write_text(p, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert p.read_text() == "old" and len(list(tmp_path.iterdir())) == 1


def test_json_round_trip_and_corrupt(tmp_path):
    write_json(tmp_path / "x.json", {"a": 1, "p": tmp_path})
    assert read_json(tmp_path / "x.json")["a"] == 1
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="bad.json"):
        read_json(tmp_path / "bad.json")
    with pytest.raises(DataError, match="not found"):
        read_json(tmp_path / "none.json")
