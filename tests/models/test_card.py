"""BackboneCard: the typed card every reader goes through (issue 21, item 3)."""

from __future__ import annotations

import json

import pytest
import torch

from eoreps.errors import DataError
from eoreps.evaluation.data import card_stats
from eoreps.models import create_backbone, load_backbone, save_backbone
from eoreps.models.card import BackboneCard
from eoreps.ssl.export import input_normalizer, stack_inputs

# the layout `eoreps pretrain` wrote before BackboneCard existed (a multimodal member, format_version 1)
OLD_CARD = {
    "method": "multimodal", "modalities": ["s2"], "band_names": {"s2": ["B02", "B03"]},
    "normalization": {"s2": {"mean": [10.0, 20.0], "std": [2.0, 4.0]}},
    "data": {"name": "simeo", "synthetic": True}, "epochs": 1, "metrics": {"loss": 0.5}, "steps": 4,
    "pretrain_modalities": ["s2", "s1"], "seed": 0, "config": {"method": "multimodal", "lr": 0.001},
    "input": {"stack": ["s2"], "image_size": [8, 8], "nan_fill": 0.0,
              "normalize": "(x - mean) / std per band, then non-finite -> nan_fill"},
    "group": {"encoder": "s2", "members": {"s2": {"file": "backbone_s2.safetensors", "modalities": ["s2"]}}},
    "backbone": {"name": "cnn-tiny", "in_chans": 2, "drop_rate": 0.1}, "num_params": 123, "format_version": 1,
}


def test_old_layout_loads_and_round_trips():
    card = BackboneCard.from_dict(json.loads(json.dumps(OLD_CARD)), source="old/backbone_s2.json")
    assert card.backbone.name == "cnn-tiny" and card.backbone.in_chans == 2
    assert card.backbone.kwargs == {"drop_rate": 0.1}
    assert card.method == "multimodal" and card.steps == 4 and card.input_stack == ["s2"] and card.extra == {}
    assert card.to_dict() == OLD_CARD
    assert BackboneCard.from_dict(card.to_dict()) == card
    st = card_stats(card, ["s2"])
    assert st is not None and st.mean["s2"] == (10.0, 20.0) and st.std["s2"] == (2.0, 4.0)


def test_save_load_round_trip_keeps_extra_keys(tmp_path):
    bb = create_backbone("cnn-tiny", in_chans=2)
    save_backbone(bb, tmp_path / "bb.safetensors", {**OLD_CARD, "my_note": "kept"})
    loaded = load_backbone(tmp_path / "bb.safetensors")
    assert isinstance(loaded.card, BackboneCard) and loaded.card.extra == {"my_note": "kept"}
    on_disk = json.loads((tmp_path / "bb.json").read_text())
    assert on_disk == {**OLD_CARD, "my_note": "kept", "backbone": {"name": "cnn-tiny", "in_chans": 2},
                       "num_params": bb.num_params}
    assert loaded.card.to_dict() == on_disk and loaded.card["method"] == "multimodal"
    x = {"s2": torch.full((1, 2, 4, 4), 20.0)}
    want = torch.stack([torch.full((4, 4), 5.0), torch.zeros(4, 4)])[None]  # (20-10)/2, (20-20)/4
    torch.testing.assert_close(stack_inputs(input_normalizer(loaded.card)(x), loaded.card), want)


@pytest.mark.parametrize("old, new", [("normalization", "normalisation"), ("modalities", "modality"),
                                      ("band_names", "bandnames")])
def test_a_renamed_key_is_an_error_not_a_fallback(tmp_path, old, new):
    bb = create_backbone("cnn-tiny", in_chans=2)
    save_backbone(bb, tmp_path / "bb.safetensors", OLD_CARD)
    card = json.loads((tmp_path / "bb.json").read_text())
    card[new] = card.pop(old)
    (tmp_path / "bb.json").write_text(json.dumps(card))
    with pytest.raises(DataError) as e:
        load_backbone(tmp_path / "bb.safetensors")
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "bb.json") in msg and new in msg and old in msg


@pytest.mark.parametrize("change, words", [
    (lambda d: d.pop("epochs"), "epochs"),
    (lambda d: d.pop("backbone"), "backbone"),
    (lambda d: d["backbone"].pop("in_chans"), "in_chans"),
    (lambda d: d.update(normalization={"s2": {"mean": [1.0]}}), "normalization"),
])
def test_missing_or_malformed_keys_name_the_card(change, words):
    d = json.loads(json.dumps(OLD_CARD))
    change(d)
    with pytest.raises(DataError) as e:
        BackboneCard.from_dict(d, source="runs/x/backbone.json")
    assert "\n" not in str(e.value) and "runs/x/backbone.json" in str(e.value) and words in str(e.value)
