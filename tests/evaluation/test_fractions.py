"""Label fractions as the study uses them: stratified, nested, fixed per seed, shared by every method."""

from __future__ import annotations

import numpy as np
import pytest
from eval_toy import toy_data

from eoreps.evaluation.encoders import MethodSpec
from eoreps.evaluation.study import StudyConfig, collect, run_study

FRACTIONS = [0.05, 0.1, 0.2, 0.5, 1.0]


@pytest.mark.parametrize("task", ["classify", "multilabel"])
def test_nested_stratified_fixed_per_seed(task: str) -> None:
    data = toy_data(task, n_train=300)
    strata = data.splits["train"].strata
    subsets = data.fraction_indices(FRACTIONS, seed=4)
    for small, large in zip(FRACTIONS[:-1], FRACTIONS[1:], strict=True):
        assert set(subsets[small]) <= set(subsets[large]), "subsets must be nested"
    assert len(subsets[1.0]) == 300
    for f in FRACTIONS:
        idx = subsets[f]
        assert len(idx) >= round(f * 300)
        if task == "classify":
            counts = np.bincount(strata[idx], minlength=3)
            expected = f * np.bincount(strata, minlength=3)
            assert np.all(np.abs(counts - expected) <= 1.0 + 1e-9), (f, counts, expected)
        else:
            counts = strata[idx].sum(0)
            expected = f * strata.sum(0)
            assert np.all(np.abs(counts - expected) <= 3.0), (f, counts, expected)
    again = data.fraction_indices([0.1], seed=4)  # same seed, other fractions asked: same subset
    np.testing.assert_array_equal(again[0.1], subsets[0.1])
    other = data.fraction_indices([0.1], seed=5)
    assert not np.array_equal(other[0.1], subsets[0.1])


def test_every_method_sees_the_same_subsets(tmp_path) -> None:
    data = toy_data("classify", n_train=60, n_eval=30)
    cfg = StudyConfig(
        methods=[MethodSpec("rand-a", backbone="random", arch="cnn-tiny"),
                 MethodSpec("rand-b", backbone="random", arch="cnn-tiny", fusion="late")],
        protocols=["knn"], fractions=[0.1, 0.5], seeds=2)
    run_study(cfg, tmp_path, data=data)
    df = collect(tmp_path)
    assert len(df) == 2 * 2 * 2
    per_key = df.groupby(["fraction", "seed"])["subset_sha"].nunique()
    assert (per_key == 1).all(), "methods of one (fraction, seed) must share the subset"
    assert df.groupby("fraction")["subset_sha"].nunique().min() == 2, "seeds must draw different subsets"
