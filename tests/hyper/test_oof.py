"""Out-of-fold scores (:mod:`eoreps.hyper.oof`): the right answer on synthetic feature sets, no leakage."""

from __future__ import annotations

import numpy as np
import pytest

from eoreps.errors import DataError
from eoreps.hyper.oof import oof_predictions, oof_scores


def _data(n: int = 36, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    good, noise = rng.normal(size=(n, 5)), rng.normal(size=(n, 40))
    y = good @ np.array([1.0, -0.5, 0.3, 0.0, 0.2]) + 0.02 * rng.normal(size=n)
    return good, noise, y


def test_features_that_determine_the_target_score_near_one_and_noise_near_zero():
    good, noise, y = _data()
    s = oof_scores({"good": good, "noise": noise}, y, folds=6, repeats=4)
    assert s["good"]["kendall_tau"] > 0.9 and s["good"]["r2"] > 0.95
    assert abs(s["noise"]["kendall_tau"]) < 0.3 and s["noise"]["r2"] < 0.1
    assert s["good"]["repeats"] == 4 and s["good"]["folds"] == 6 and s["good"]["n"] == 36
    assert s["good"]["tau_p_value"] < 1e-6 < s["noise"]["tau_p_value"]


def test_each_prediction_comes_from_the_other_folds_only():
    """One indicator feature per row lets an in-sample ridge fit pure-noise targets almost exactly; out of
    fold the test row's indicator was never seen, so nothing is predicted (R^2 <= 0)."""
    from sklearn.linear_model import Ridge

    y = np.random.default_rng(3).normal(size=30)
    x = np.eye(30)
    assert Ridge(alpha=1e-3).fit(x, y).score(x, y) > 0.99  # what a leak would report
    loo, fivefold = oof_scores({"rows": x}, y, folds=30)["rows"], oof_scores({"rows": x}, y, folds=5)["rows"]
    assert loo["repeats"] == 1 and loo["r2"] <= 0.0 and fivefold["r2"] <= 0.0
    good, _, y = _data(12)
    assert oof_predictions(good, y, folds=12).shape == (1, 12)  # leave-one-out: one deterministic repeat
    # the same seed gives the same folds and predictions; another seed other folds
    a, b = oof_predictions(good, y, 3, 2, seed=1), oof_predictions(good, y, 3, 2, seed=1)
    assert a.shape == (2, 12) and np.array_equal(a, b)
    assert not np.array_equal(a, oof_predictions(good, y, 3, 2, seed=5))


def test_groups_hold_out_whole_groups():
    """A target that is a per-group offset, and a feature that names the group (one-hot): random folds see
    every group in training and predict it; leave-one-group-out never saw the held-out group and cannot."""
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(6), 6)
    y = rng.normal(size=6)[groups] + 0.01 * rng.normal(size=36)
    onehot = np.eye(6)[groups]
    random_folds = oof_scores({"group": onehot}, y, folds=6, repeats=3)["group"]
    held_out = oof_scores({"group": onehot}, y, groups=groups)["group"]
    assert random_folds["r2"] > 0.9 and held_out["r2"] < 0.0
    assert held_out["repeats"] == 1 and held_out["folds"] == 6
    with pytest.raises(DataError, match="groups"):
        oof_predictions(onehot, y, groups=np.zeros(36))


@pytest.mark.parametrize(
    "x, y, folds, needle",
    [
        (np.zeros((4, 2)), np.zeros(5), 2, "4 feature rows for 5 targets"),
        (np.zeros((2, 2)), np.zeros(2), 2, ">= 3"),
        (np.zeros((6, 2)), np.zeros(6), 1, "folds=1"),
        (np.full((6, 2), np.nan), np.zeros(6), 2, "NaN"),
        (np.arange(6.0).reshape(3, 2), np.arange(3.0), 2, "training fold of 1 model"),
    ],
)
def test_bad_input_is_one_line(x, y, folds, needle):
    with pytest.raises(DataError, match=needle) as e:
        oof_predictions(x, y, folds)
    assert "\n" not in str(e.value)


def test_zoo_baseline_scores_out_of_fold_adds_the_extra_feature_sets(tiny_zoo):
    from eoreps.hyper.probing_features import zoo_baseline_scores
    from eoreps.zoo.modelzoo import ModelZoo

    zoo = ModelZoo(tiny_zoo)
    y = zoo.properties["test_acc"].to_numpy()
    s = zoo_baseline_scores(zoo, "test_acc", folds=4, repeats=2, n_inputs=8, extra={"copy": y[:, None]})
    assert set(s) == {"s(W)", "probing", "copy"}
    assert s["copy"]["kendall_tau"] > 0.99 and s["copy"]["r2"] > 0.99
    assert all(v["n"] == len(zoo) and v["repeats"] == 2 and v["folds"] == 4 for v in s.values())
    assert np.isfinite(s["s(W)"]["kendall_tau"]) and np.isfinite(s["probing"]["r2"])
