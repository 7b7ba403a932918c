"""The KDE sampler of ``hyper sample``: Scott's bandwidth by default, scaled on request."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.neighbors import KernelDensity

from eoreps.errors import ConfigError, DataError
from eoreps.hyper.sample import SampleConfig, kde_sample


def _anchors() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(30, 16)) * np.linspace(0.5, 3.0, 16) + 2.0


def test_default_bandwidth_is_scikit_learns_scott():
    z = _anchors()
    mu, sd = z.mean(0), z.std(0) + 1e-8
    want = (
        KernelDensity(kernel="gaussian", bandwidth="scott").fit((z - mu) / sd).sample(40, random_state=3) * sd
        + mu
    )
    np.testing.assert_allclose(kde_sample(z, 40, seed=3), want, rtol=0, atol=1e-12)


def test_a_smaller_bandwidth_samples_closer_to_the_anchors():
    z = _anchors()
    sd = z.std(0)

    def mean_nearest(s: np.ndarray) -> float:  # standardised distance of each sample to its nearest anchor
        d = (((s[:, None, :] - z[None]) / sd) ** 2).sum(-1) ** 0.5
        return float(d.min(1).mean())

    near = [mean_nearest(kde_sample(z, 200, seed=1, bandwidth_scale=f)) for f in (1.0, 0.5, 0.1)]
    assert near[0] > near[1] > near[2]
    assert near[2] < 0.15 * near[0]


def test_bad_bandwidth_and_too_few_anchors_are_one_line_errors():
    with pytest.raises(ConfigError, match="^bandwidth_scale=0.0 must lie in"):
        SampleConfig(zoo=Path("z"), rep=Path("r"), bandwidth_scale=0.0)
    with pytest.raises(DataError, match="at least 2 anchor"):
        kde_sample(_anchors()[:1], 5)
