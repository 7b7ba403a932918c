"""Diversity of a set of models: pairwise prediction disagreement and weight distance."""

from __future__ import annotations

import itertools

import pytest
import torch

from eoreps.hyper.diversity import diversity, mean_pairwise_disagreement, mean_pairwise_distance, predictions
from eoreps.zoo.architectures import ZooNet, build_model, flatten_state, load_flat, make_arch


def test_disagreement_and_distance_match_pairwise_loops():
    g = torch.Generator().manual_seed(0)
    preds = torch.randint(0, 4, (5, 30), generator=g)
    pairs = list(itertools.combinations(range(5), 2))
    literal = sum(float((preds[i] != preds[j]).float().mean()) for i, j in pairs) / len(pairs)
    assert mean_pairwise_disagreement(preds, 4) == pytest.approx(literal, abs=1e-6)
    w = torch.randn(4, 7, generator=g)
    literal = sum(float((w[i] - w[j]).norm()) for i, j in itertools.combinations(range(4), 2)) / 6
    assert mean_pairwise_distance(w) == pytest.approx(literal, rel=1e-6)


def test_copies_of_one_model_have_no_diversity_and_distinct_models_have_some():
    arch = make_arch("cnn_digits")
    x = torch.randn(50, *arch.in_shape)
    models = torch.stack([flatten_state(build_model(arch, "tanh", "kaiming_normal", s)) for s in range(4)])
    p = predictions(arch, models, "tanh", x)
    for i in range(4):  # the vectorized forward predicts what each model predicts on its own
        assert torch.equal(p[i], load_flat(ZooNet(arch, "tanh"), models[i])(x).argmax(-1))
    assert diversity(arch, models[:1].repeat(3, 1), "tanh", x) == {"prediction_disagreement": 0.0,
                                                                   "weight_distance": 0.0}
    d = diversity(arch, models, "tanh", x)
    assert d["prediction_disagreement"] > 0 and d["weight_distance"] > 0
