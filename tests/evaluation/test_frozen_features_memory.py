"""``frozen_features`` holds one normalised split at a time (peak memory on large evaluation sets) and
normalises nothing when every split's features are cached."""

from __future__ import annotations

import weakref

import numpy as np
import torch
from eval_toy import toy_data

from eoreps.evaluation import features as F
from eoreps.evaluation.encoders import MethodSpec
from eoreps.evaluation.protocols import Cell, ProtocolOptions
from eoreps.evaluation.protocols.base import frozen_features

RAND = MethodSpec("rand", backbone="random", arch="cnn-tiny", modalities=["s2"])


def _cell(cache=None) -> tuple[Cell, list[tuple[str, weakref.ref]]]:
    """A frozen-feature cell whose data records each normalised split it hands out (a weak reference)."""
    data = toy_data("classify", n_train=30, n_eval=15)
    made: list[tuple[str, weakref.ref]] = []
    real = data.normalized

    def normalized(split, stats=None, **kw):
        out = real(split, stats, **kw)
        made.append((split, weakref.ref(out["s2"])))
        return out

    data.normalized = normalized  # type: ignore[method-assign]
    idx = data.fraction_indices([1.0], 0)[1.0]
    return Cell(data, RAND, "linear", 1.0, 0, idx, ProtocolOptions(feature_batch_size=8), cache), made


def test_one_normalised_split_is_alive_while_features_are_extracted(monkeypatch, tmp_path):
    cell, made = _cell(tmp_path)
    live_at: list[tuple[int, int]] = []
    real = F.extract_features

    def extract(encoder, inputs, *a, **kw):
        live_at.append((len(next(iter(inputs.values()))), sum(r() is not None for _, r in made)))
        return real(encoder, inputs, *a, **kw)

    monkeypatch.setattr(F, "extract_features", extract)
    feats, built, _ = frozen_features(cell)
    assert [s for s, _ in made] == ["train", "val", "test"]  # each split normalised once
    assert live_at == [(30, 1), (15, 1), (15, 1)]  # the old code held all three (and kept them on the data)
    assert not cell.data._normalized and all(r() is None for _, r in made)
    stats = built.stats or cell.data.train_stats()
    for split in ("train", "val", "test"):  # the same features as from the data's own normalised inputs
        want = real(built.encoder, {"s2": cell.data.normalized(split, stats)["s2"]}, 8)
        torch.testing.assert_close(feats[split], want)
    # every split cached: a second cell normalises nothing
    again, made_again = _cell(tmp_path)
    feats2, _, _ = frozen_features(again)
    assert made_again == [] and len(live_at) == 3
    for split in feats:
        np.testing.assert_array_equal(feats2[split].numpy(), feats[split].numpy())


def test_cached_normalised_inputs_are_reused_not_copied():
    cell, made = _cell()
    stats = cell.data.train_stats()
    kept = cell.data.normalized("val", stats)  # e.g. a finetune cell cached them on the data
    frozen_features(cell)
    assert [r() for s, r in made if s == "val"][1] is kept["s2"]
