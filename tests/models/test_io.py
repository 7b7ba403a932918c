"""Backbone save/load: exact round trip, card contents, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from eoreps.errors import DataError
from eoreps.models import create_backbone, load_backbone, save_backbone


@pytest.mark.parametrize("name,kwargs", [("cnn-tiny", {"drop_rate": 0.2}),
                                         ("timm:vit_tiny_patch16_224", {"img_size": 32, "patch_size": 4})])
def test_round_trip(tmp_path, name, kwargs) -> None:
    torch.manual_seed(0)
    bb = create_backbone(name, in_chans=3, **kwargs)
    card = {"method": "simclr", "modalities": ["s2"], "band_names": {"s2": ["B02", "B03", "B04"]},
            "normalization": {"s2": {"mean": np.array([1.0, 2.0, 3.0]), "std": torch.ones(3)}},
            "epochs": 3, "metrics": {"loss": 0.5}, "extra": "kept"}
    path = save_backbone(bb, tmp_path / "bb.safetensors", card)
    assert path.is_file() and (tmp_path / "bb.json").is_file()
    on_disk = json.loads((tmp_path / "bb.json").read_text())
    assert on_disk["backbone"]["name"] == name and on_disk["data"] is None
    assert on_disk["normalization"]["s2"]["mean"] == [1.0, 2.0, 3.0]
    for p in (path, tmp_path / "bb.json"):
        bb2 = load_backbone(p)
        assert bb2.card["extra"] == "kept" and bb2.card["num_params"] == bb.num_params
        x = torch.randn(2, 3, 32, 32)
        torch.testing.assert_close(bb2.eval()(x), bb.eval()(x))
    # the card embedded in the weights file suffices
    (tmp_path / "bb.json").unlink()
    assert load_backbone(path).card["method"] == "simclr"


def test_folder_path(tmp_path) -> None:
    bb = create_backbone("cnn-tiny", in_chans=2)
    save_backbone(bb, tmp_path / "out", {})
    assert (tmp_path / "out" / "backbone.safetensors").is_file()
    assert load_backbone(tmp_path / "out").in_chans == 2


def test_errors(tmp_path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_backbone(tmp_path / "missing.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a valid safetensors"):
        load_backbone(tmp_path / "bad.safetensors")
    bb = create_backbone("cnn-tiny", in_chans=2)
    save_backbone(bb, tmp_path / "a.safetensors", {})
    card = json.loads((tmp_path / "a.json").read_text())
    card["backbone"]["in_chans"] = 5
    (tmp_path / "a.json").write_text(json.dumps(card))
    with pytest.raises(DataError, match="do not match"):
        load_backbone(tmp_path / "a.safetensors")
