"""Packing a source detects its format once: the cache key's detection is passed to the pack's manifest
record and to every split it opens (``PackOptions.source_format``), and a direct pack detects it once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eoreps.data import formats


@pytest.fixture
def detections(monkeypatch) -> list[str]:
    """Every ``detect_format`` call's path (the real detection still answers)."""
    calls: list[str] = []
    real = formats.detect_format

    def counted(path):
        calls.append(str(path))
        return real(path)

    monkeypatch.setattr(formats, "detect_format", counted)
    return calls


def test_a_cached_pack_detects_the_source_format_once(tmp_path, monkeypatch, detections):
    from eoreps.data.pack_cache import packed_source
    from eoreps.data.simeo.io import write_simeo

    src = write_simeo(tmp_path / "src", n=24, seed=0)
    monkeypatch.setenv("EOREPS_CACHE", str(tmp_path / "cache"))
    root = Path(packed_source(str(src)).data)
    assert detections == [str(src.resolve())]
    manifest = json.loads((root / "eoreps_pack.json").read_text())
    assert manifest["source"]["format"] == "simeo"


def test_a_direct_pack_detects_once(tmp_path, detections):
    from eoreps.data.pack import PackOptions, pack
    from eoreps.data.simeo.io import write_simeo

    src = write_simeo(tmp_path / "src", n=24, seed=0)
    res = pack(PackOptions(source=str(src), out=tmp_path / "pack"))
    assert len(detections) == 1 and res.manifest["source"]["format"] == "simeo"
