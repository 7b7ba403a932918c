"""The probing baseline (:mod:`eoreps.hyper.probing_features`): shape, determinism, content."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from eoreps.errors import DataError
from eoreps.hyper.probing_features import (
    baseline_scores,
    output_features,
    probe_inputs,
    probing_feature_names,
    probing_features,
)


def _nets(k: int = 3, n: int = 4) -> list[nn.Module]:
    torch.manual_seed(0)
    return [nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, k)) for _ in range(n)]


def test_shape_and_determinism():
    x = probe_inputs((2, 4, 4), n=16, seed=3)
    assert x.shape == (16, 2, 4, 4) and torch.equal(x, probe_inputs((2, 4, 4), n=16, seed=3))
    assert not torch.equal(x, probe_inputs((2, 4, 4), n=16, seed=4))
    nets = _nets()
    f = probing_features(nets, x)
    assert f.shape == (4, 2 * 3 + 5) and len(probing_feature_names(3)) == 11
    assert torch.equal(f, probing_features(nets, x))
    assert not torch.allclose(f[0], f[1])  # different models, different features


def test_features_are_the_output_statistics():
    x = probe_inputs((2, 4, 4), n=32)
    net = _nets(n=1)[0]
    out = net(x).detach().double()
    f = output_features(net, x).double()
    assert torch.allclose(f[:3], out.mean(0), atol=1e-6)
    assert torch.allclose(f[3:6], out.std(0, unbiased=False), atol=1e-6)
    assert f[6] == pytest.approx(float(torch.quantile(out.reshape(-1), 0.01)), abs=1e-6)
    assert f[8] == pytest.approx(float(out.reshape(-1).median()), abs=1e-5) or f[8] == pytest.approx(
        float(torch.quantile(out.reshape(-1), 0.5)), abs=1e-6
    )


def test_models_of_different_output_sizes_are_refused():
    with pytest.raises(DataError, match="different sizes"):
        probing_features([*_nets(3, 1), *_nets(5, 1)], probe_inputs((2, 4, 4), 4))


def test_baseline_scores_rank_an_informative_feature_set_first():
    """A target that is a linear function of one feature set: that set gets R^2 and tau near 1, noise
    features do not."""
    rng = np.random.default_rng(0)
    good, noise = rng.normal(size=(60, 4)), rng.normal(size=(60, 4))
    y = good @ np.array([1.0, -0.5, 0.3, 0.0]) + 0.01 * rng.normal(size=60)
    s = baseline_scores({"good": good, "noise": noise}, y, np.arange(60), seed=1)
    assert s["good"]["r2"] > 0.95 and s["good"]["kendall_tau"] > 0.8
    assert s["noise"]["r2"] < 0.5 and s["noise"]["kendall_tau"] < s["good"]["kendall_tau"]
    assert s["good"]["n_test"] == 18 and s["good"]["n_train"] == 30
    assert baseline_scores({"good": good}, y, np.arange(60), seed=1) == {"good": s["good"]}  # deterministic
