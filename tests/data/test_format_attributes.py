"""The registered formats say whether their split is seeded and whether their samples depend on the
modalities read (``DataFormat.seeded_split`` / ``paired_modalities``); the pack cache and the pretrained zoo
read those attributes, and the pack cache detects a source's format once per run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import eoreps.data.formats as formats_module
from eoreps.data.formats import FORMATS, formats

# the constant sets these attributes replaced (eoreps.data.pack_cache._SEEDED_FORMATS / _PAIRED_FORMATS)
OLD_SEEDED = {"geotiff-folder"}
OLD_PAIRED = {"bigearthnet-v1-s2", "bigearthnet-v1-s1", "bigearthnet-v1-pairs", "geotiff-folder"}
BUILT_INS = ["packed", "simeo", "reben-v2", "geotiff-folder", "bigearthnet-v1-s2", "bigearthnet-v1-s1",
             "bigearthnet-v1-pairs", "bigearthnet-npz"]


def test_format_attributes_match_the_old_constant_sets():
    assert list(FORMATS) == BUILT_INS
    built_in = [f for f in formats() if f.name in BUILT_INS]
    assert {f.name for f in built_in if f.seeded_split} == OLD_SEEDED
    assert {f.name for f in built_in if f.paired_modalities} == OLD_PAIRED


def test_split_options_of_a_pretrained_zoo_follow_seeded_split(tmp_path, monkeypatch):
    from eoreps.zoo.pretrained import _split_options

    class Spec:
        data = str(tmp_path)

    for name, seeded in [("geotiff-folder", True), ("reben-v2", False)]:
        monkeypatch.setattr(formats_module, "detect_format", lambda path, name=name: name)
        assert _split_options(Spec(), 7) == ({"split_seed": 7} if seeded else {})


def test_pack_cache_detects_the_format_once(tmp_path, monkeypatch):
    """A source packed into the cache: the pack cache asks ``detect_format`` once (it asked twice: the key,
    then the packing's modalities); the pack itself and the dataset it opens may ask on their own."""
    from eoreps.data.pack_cache import packed_source
    from eoreps.data.simeo.io import write_simeo

    monkeypatch.setenv("EOREPS_CACHE", str(tmp_path / "cache"))
    source = write_simeo(tmp_path / "simeo", n=24, seed=0)
    real, callers = formats_module.detect_format, []

    def counting(path):
        callers.append(sys._getframe(1).f_globals.get("__name__"))
        return real(path)

    monkeypatch.setattr(formats_module, "detect_format", counting)
    root = Path(packed_source(str(source)).data)
    assert (root / "eoreps_pack.json").is_file()
    assert callers.count("eoreps.data.pack_cache") == 1, callers


@pytest.mark.parametrize("paired", [False, True])
def test_cache_key_reads_paired_modalities(tmp_path, paired):
    """The key depends on the modalities exactly when the format says its samples do."""
    import dataclasses

    from eoreps.data.formats import FORMAT_REGISTRY
    from eoreps.data.pack_cache import cache_key

    fmt = dataclasses.replace(FORMAT_REGISTRY.get("simeo"), paired_modalities=paired)
    keys = {cache_key(str(tmp_path), {}, 0, mods, fmt) for mods in [("s2",), ("s2", "s1")]}
    assert len(keys) == (2 if paired else 1)
