"""Adding a data format = one file + ``@register_format``: a toy one is detected and opened."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eoreps.data.datasets.base import EODataset
from eoreps.data.formats import (
    FORMAT_REGISTRY,
    FORMATS,
    detect_format,
    formats,
    open_dataset,
    register_format,
)
from eoreps.errors import ConfigError, DataError


class ToyDataset(EODataset):
    """``n`` constant 2-band samples described by ``toy.json``."""

    modalities = ("s2",)

    def __init__(
        self, path: Path, split: str, modalities: tuple[str, ...] | None, scale: float = 1.0
    ) -> None:
        self.n = json.loads((path / "toy.json").read_text())["n"]
        self.split, self.scale = split, scale

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {"s2": np.full((2, 4, 4), self.scale * i, np.float32), "label": 0, "id": str(i)}


def _is_toy(path: Path) -> bool:
    return (path / "toy.json").is_file()


@pytest.fixture()
def toy_format():
    register_format("toy-json", detect=_is_toy, priority=70)(ToyDataset)
    register_format("toy-json-first", detect=_is_toy, priority=65)(ToyDataset)
    yield
    FORMAT_REGISTRY.remove("toy-json")
    FORMAT_REGISTRY.remove("toy-json-first")


def test_toy_format_is_detected_and_opened(toy_format, tmp_path: Path) -> None:
    (tmp_path / "toy.json").write_text(json.dumps({"n": 3}))
    assert detect_format(tmp_path) == "toy-json-first"  # both detect it: the lower priority wins
    ds = open_dataset(tmp_path, split="train", modalities=["s2"], scale=2.0)
    assert isinstance(ds, ToyDataset) and len(ds) == 3 and ds.split == "train"
    assert float(ds[2]["s2"].max()) == 4.0  # the keyword option reached the opener
    with pytest.raises(ConfigError, match="pair=True applies to BigEarthNet v1 folders only"):
        open_dataset(tmp_path, pair=True)


def test_toy_format_is_gone_after_the_fixture(tmp_path: Path) -> None:
    (tmp_path / "toy.json").write_text(json.dumps({"n": 3}))
    assert "toy-json" not in FORMAT_REGISTRY
    with pytest.raises(DataError, match="unrecognised dataset folder"):
        detect_format(tmp_path)


def test_builtin_formats_in_detection_order() -> None:
    assert FORMATS == (
        "packed",
        "simeo",
        "reben-v2",
        "geotiff-folder",
        "bigearthnet-v1-s2",
        "bigearthnet-v1-s1",
        "bigearthnet-v1-pairs",
        "bigearthnet-npz",
    )
    assert [f.name for f in formats() if f.pairable] == ["bigearthnet-v1-s2", "bigearthnet-v1-s1",
                                                          "bigearthnet-v1-pairs"]


def test_simeo_detection_does_not_hide_a_broken_module(tmp_path: Path, monkeypatch) -> None:
    """A SimEO module that fails to import is an error, not 'not a SimEO folder' (was swallowed)."""
    import sys

    monkeypatch.setitem(sys.modules, "eoreps.data.simeo", None)  # makes `import eoreps.data.simeo` fail
    with pytest.raises(ImportError):
        detect_format(tmp_path)
