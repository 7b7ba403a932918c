"""Out-of-fold scores of predicting a model property from features, for zoos too small for one split.

With a few dozen models (a zoo of pretrained backbones) a single held-out split scores a handful of test
models and its R^2 / Kendall's tau are mostly noise. Here every model is predicted by a ridge regression
fitted on the other folds of a repeated K-fold split (K = n: leave-one-out): standardisation fitted on the
training folds only, ``alpha`` chosen inside the training folds by efficient leave-one-out
(scikit-learn's ``RidgeCV``), so no test fold's target reaches its own prediction. Each repeat gives one
out-of-fold prediction per model; it is scored by R^2 and Kendall's tau against the measured values, and
the scores are summarised over the repeats (mean, standard deviation).

Models of a zoo can share more than their recipe (a zoo of pretrained backbones: members with the same seed
start from the same initial weights). ``groups`` then holds out whole groups (leave-one-group-out): every
model is predicted by a regression that has seen no model of its group, i.e. how well the features
generalise to, e.g., an unseen initialisation.
"""

from __future__ import annotations

import numpy as np

from eoreps.errors import DataError
from eoreps.hyper.linear import ALPHAS, r2_score


def oof_predictions(
    x: np.ndarray,
    y: np.ndarray,
    folds: int = 5,
    repeats: int = 10,
    seed: int = 0,
    alphas: tuple[float, ...] = ALPHAS,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """``(repeats, n)`` out-of-fold ridge predictions of ``y`` (n,) from ``x`` (n, p).

    ``folds >= n`` is leave-one-out (one repeat: it is deterministic). Row ``r`` uses the shuffle seeded by
    ``seed + r``. ``groups`` (n,): leave-one-group-out instead (one repeat; ``folds`` unused; alpha is still
    chosen by leave-one-out over the training models). Raises a one-line :class:`DataError` for fewer than
    3 rows, mismatched lengths, ``folds < 2``, NaN/inf or fewer than 2 groups.
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    n = len(y)
    if len(x) != n or n < 3:
        raise DataError(f"out-of-fold scores: {len(x)} feature rows for {n} targets; need as many, >= 3")
    if folds < 2:
        raise DataError(f"out-of-fold scores: folds={folds} must be >= 2")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise DataError("out-of-fold scores: features or targets hold NaN/inf; drop those models first")
    if groups is not None:
        groups = np.asarray(groups).reshape(-1)
        if len(groups) != n or len(np.unique(groups)) < 2:
            raise DataError(f"out-of-fold scores: groups need one value per target ({len(groups)} for {n}) "
                            f"and >= 2 distinct values")
    k, reps = min(int(folds), n), (1 if folds >= n or groups is not None else int(repeats))
    out = np.empty((reps, n))
    for r in range(reps):
        order = np.random.default_rng(seed + r).permutation(n)
        tests = (
            [np.flatnonzero(groups == g) for g in np.unique(groups)]
            if groups is not None
            else np.array_split(order, k)
        )
        for test in tests:
            train = np.setdiff1d(order, test)
            if len(train) < 2:
                raise DataError(f"out-of-fold scores: a training fold of {len(train)} model(s); use fewer "
                                f"folds or groups")
            model = make_pipeline(StandardScaler(), RidgeCV(alphas=alphas)).fit(x[train], y[train])
            out[r, test] = model.predict(x[test])
    return out


def oof_scores(
    features: dict[str, np.ndarray],
    target: np.ndarray,
    folds: int = 5,
    repeats: int = 10,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """R^2 and Kendall's tau of :func:`oof_predictions` per feature set, over the repeats (``groups``:
    leave-one-group-out, one repeat).

    Returns ``{name: {"r2", "r2_std", "kendall_tau", "kendall_tau_std", "tau_p_value", "n", "folds",
    "repeats"}}``: means and standard deviations over the repeats; ``tau_p_value`` is scipy's two-sided
    p-value of the tau of the first repeat (indicative only: out-of-fold predictions are not independent).
    Tau is NaN when the targets are constant.
    """
    from scipy.stats import kendalltau

    y = np.asarray(target, dtype=np.float64).reshape(-1)
    out: dict[str, dict[str, float]] = {}
    for name, x in features.items():
        pred = oof_predictions(x, y, folds, repeats, seed, groups=groups)
        r2 = np.array([r2_score(y, p) for p in pred])
        taus = [kendalltau(y, p) for p in pred]
        tau = np.array([float(t.statistic) for t in taus])
        out[name] = {
            "r2": float(r2.mean()),
            "r2_std": float(r2.std()),
            "kendall_tau": float(tau.mean()),
            "kendall_tau_std": float(tau.std()),
            "tau_p_value": float(taus[0].pvalue),
            "n": int(len(y)),
            "folds": int(len(np.unique(groups)) if groups is not None else min(folds, len(y))),
            "repeats": int(len(pred)),
        }
    return out
