"""Weighted cosine kNN against a literal, one-query-at-a-time reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from eoreps.evaluation.protocols.knn import knn_scores


def brute_force_knn(xtr: np.ndarray, ytr: np.ndarray, xq: np.ndarray, k: int, t: float, num_classes: int,
                    multilabel: bool) -> np.ndarray:
    """Loop over queries; cosine similarity, sort, weight exp(sim / T), vote."""
    out = np.zeros((len(xq), num_classes))
    for qi, q in enumerate(xq):
        sims = []
        for i, x in enumerate(xtr):
            cos = float(np.dot(q, x) / (math.sqrt(np.dot(q, q)) * math.sqrt(np.dot(x, x))))
            sims.append((cos, i))
        sims.sort(key=lambda s: -s[0])
        total = 0.0
        for cos, i in sims[:k]:
            w = math.exp(cos / t)
            total += w
            if multilabel:
                out[qi] += w * ytr[i]
            else:
                out[qi, int(ytr[i])] += w
        if multilabel:
            out[qi] /= total
    return out


@pytest.mark.parametrize("k,t", [(1, 0.07), (5, 0.07), (7, 0.5), (100, 0.1)])
def test_single_label_matches_brute_force(k: int, t: float) -> None:
    rng = np.random.default_rng(k)
    xtr, xq = rng.normal(size=(40, 6)), rng.normal(size=(13, 6))
    ytr = rng.integers(0, 4, size=40)
    got = knn_scores(torch.tensor(xtr), torch.tensor(ytr), torch.tensor(xq), k, t, 4, chunk=5).numpy()
    ref = brute_force_knn(xtr, ytr, xq, min(k, 40), t, 4, multilabel=False)
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    assert (got.argmax(1) == ref.argmax(1)).all()


def test_multilabel_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    xtr, xq = rng.normal(size=(30, 5)), rng.normal(size=(9, 5))
    ytr = (rng.random((30, 6)) < 0.3).astype(np.float32)
    got = knn_scores(
        torch.tensor(xtr), torch.tensor(ytr), torch.tensor(xq), 6, 0.2, 6, multilabel=True
    ).numpy()
    ref = brute_force_knn(xtr, ytr, xq, 6, 0.2, 6, multilabel=True)
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    assert ((got >= 0) & (got <= 1 + 1e-9)).all()


def test_scale_invariance_and_bad_options() -> None:
    rng = np.random.default_rng(0)
    xtr, xq = torch.tensor(rng.normal(size=(20, 4))), torch.tensor(rng.normal(size=(5, 4)))
    y = torch.tensor(rng.integers(0, 3, 20))
    a = knn_scores(xtr, y, xq, 5, 0.1, 3)
    b = knn_scores(3.0 * xtr, y, 0.5 * xq, 5, 0.1, 3)  # cosine: feature scale does not matter
    torch.testing.assert_close(a, b, rtol=1e-5, atol=0)
    from eoreps.errors import ConfigError

    with pytest.raises(ConfigError):
        knn_scores(xtr, y, xq, 0, 0.1, 3)
