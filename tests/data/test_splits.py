"""Label-fraction subsets: nested, stratified, fixed per seed, every class present."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eoreps.data.splits import label_fraction_indices, stratified_order, subset_size, train_val_test_split
from eoreps.errors import ConfigError, DataError

FRACTIONS = (0.01, 0.1, 0.2, 0.5, 1.0)


def _single(n: int = 1000, seed: int = 0) -> np.ndarray:
    """Imbalanced 10-class labels plus one class with only 3 examples."""
    rng = np.random.default_rng(seed)
    p = np.linspace(1, 10, 10)
    y = rng.choice(10, size=n, p=p / p.sum())
    y[rng.choice(n, 3, replace=False)] = 10
    return y


def _multi(n: int = 1500, k: int = 12, seed: int = 0) -> np.ndarray:
    """Multi-hot labels with correlated, very unequal label frequencies and some empty rows."""
    rng = np.random.default_rng(seed)
    p = 0.02 + 0.5 * rng.random(k) ** 2
    y = rng.random((n, k)) < p
    y[:, 1] |= y[:, 0] & (rng.random(n) < 0.7)  # correlation
    return y.astype(np.float32)


@pytest.mark.parametrize("labels", [_single(), _multi()], ids=["single", "multi"])
def test_nested_fixed_and_seed_dependent(labels):
    a = label_fraction_indices(labels, FRACTIONS, seed=3)
    b = label_fraction_indices(labels, FRACTIONS, seed=3)
    c = label_fraction_indices(labels, FRACTIONS, seed=4)
    for small, large in zip(FRACTIONS[:-1], FRACTIONS[1:], strict=True):
        assert set(a[small]) <= set(a[large])
    for f in FRACTIONS:
        np.testing.assert_array_equal(a[f], b[f])
        assert np.all(np.diff(a[f]) > 0)  # sorted, unique
    assert not np.array_equal(a[0.1], c[0.1])
    assert len(a[1.0]) == len(labels)
    # a subset does not depend on which other fractions were requested
    np.testing.assert_array_equal(label_fraction_indices(labels, [0.1], seed=3)[0.1], a[0.1])


def test_single_label_stratified_and_sizes():
    y = _single()
    n = len(y)
    counts = np.bincount(y)
    subsets = label_fraction_indices(y, FRACTIONS, seed=0, min_per_class=1)
    for f in (0.1, 0.2, 0.5):
        got = np.bincount(y[subsets[f]], minlength=len(counts))
        assert len(subsets[f]) == max(subset_size(f, n), 11)
        # systematic sampling: within ~1 sample of proportional, or the per-class floor
        expected = np.maximum(counts * len(subsets[f]) / n, 1)
        assert np.all(np.abs(got - expected) <= 2.0), (f, got, expected)
    # a random subset of the same size is much worse (guards against a test that cannot fail)
    rand = np.random.default_rng(0).permutation(n)[: len(subsets[0.1])]
    dev_rand = np.abs(np.bincount(y[rand], minlength=11) - counts * len(rand) / n).max()
    dev_ours = np.abs(np.bincount(y[subsets[0.1]], minlength=11) - counts * len(rand) / n).max()
    assert dev_ours < dev_rand


def test_every_class_present_at_small_fractions():
    y = _single(n=300)
    for seed in range(5):
        sub = label_fraction_indices(y, [0.01], seed=seed)[0.01]
        assert set(y[sub]) == set(y), seed  # 1 % of 300 = 3 samples, but 11 classes present
        sub2 = label_fraction_indices(y, [0.01], seed=seed, min_per_class=2)[0.01]
        assert np.all(np.bincount(y[sub2], minlength=11) >= np.minimum(2, np.bincount(y)))
    ym = _multi(n=400)
    sub = label_fraction_indices(ym, [0.01], seed=1)[0.01]
    present = ym.sum(0) > 0
    assert np.all(ym[sub].sum(0)[present] >= 1)
    # without the floor the 1 % subset is just round(0.01 * N) samples
    assert len(label_fraction_indices(y, [0.01], seed=0, min_per_class=0)[0.01]) == 3


def test_multilabel_proportions_preserved():
    y = _multi()
    n = len(y)
    order = stratified_order(y, seed=0)
    assert sorted(order.tolist()) == list(range(n))
    total = y.sum(0)
    rng = np.random.default_rng(0)
    for m in (150, 300, 750):
        ours = np.abs(y[order[:m]].sum(0) - total * m / n).max()
        rand = np.mean([np.abs(y[rng.permutation(n)[:m]].sum(0) - total * m / n).max() for _ in range(10)])
        assert ours <= 3.0, (m, ours)
        assert ours < rand / 2, (m, ours, rand)


def test_torch_input_and_multilabel_equivalence():
    y = _single(200)
    np.testing.assert_array_equal(stratified_order(torch.as_tensor(y), 5), stratified_order(y, 5))
    ym = _multi(200)
    np.testing.assert_array_equal(stratified_order(torch.as_tensor(ym), 5), stratified_order(ym, 5))


def test_train_val_test_split_disjoint_and_stratified():
    y = _single(1000)
    tr, va, te = train_val_test_split(y, (0.7, 0.15, 0.15), seed=0)
    assert len(tr) + len(va) + len(te) == 1000
    assert not (set(tr) & set(va)) and not (set(tr) & set(te)) and not (set(va) & set(te))
    counts = np.bincount(y)
    assert np.abs(np.bincount(y[va], minlength=11) - 0.15 * counts).max() <= 2.0


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan"), "x"])
def test_bad_fraction(bad):
    with pytest.raises(ConfigError, match="fraction"):
        label_fraction_indices(_single(50), [0.1, bad], seed=0)


def test_bad_labels():
    with pytest.raises(DataError):
        label_fraction_indices(np.zeros((2, 2, 2)), [0.1], seed=0)
    with pytest.raises(DataError):
        label_fraction_indices(np.array([0.5, 1.0]), [0.1], seed=0)
    with pytest.raises(ConfigError):
        train_val_test_split(_single(50), (0.8, 0.3), seed=0)


@pytest.mark.realdata
def test_real_bigearthnet_label_fractions(shared_data):
    labels = np.load(shared_data / "bigearthnet" / "ben_s1s2_real.npz")["labels19"]
    subsets = label_fraction_indices(labels, FRACTIONS, seed=0)
    present = labels.sum(0) > 0
    assert 0 < present.sum() < labels.shape[1]  # the known quirk: some of the 19 classes never occur
    assert np.all(labels[subsets[0.01]].sum(0)[present] >= 1)
    for small, large in zip(FRACTIONS[:-1], FRACTIONS[1:], strict=True):
        assert set(subsets[small]) <= set(subsets[large])
