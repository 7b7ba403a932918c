"""Linear probes with the regularisation chosen on a validation split.

Ridge is solved through one SVD of the standardised training features for all regularisation
strengths and all targets at once (hand-written because scikit-learn's ``RidgeCV`` selects by
leave-one-out / k-fold, not on a fixed validation split of other models, and a ``Ridge`` per strength
and target would refactor the same matrix dozens of times). Logistic regression is scikit-learn's,
with ``C`` chosen on validation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ALPHAS = tuple(10.0 ** k for k in range(-3, 6))
CS = (0.01, 0.1, 1.0, 10.0)


def r2_score(y: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination (1 - SSE / SST); NaN when ``y`` is constant."""
    sst = float(((y - y.mean()) ** 2).sum())
    if sst <= 1e-12 * max(1, len(y)):
        return float("nan")
    return 1.0 - float(((y - pred) ** 2).sum()) / sst


@dataclass
class Standardizer:
    """Feature standardisation with training statistics (constant features left at 0)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardizer:
        std = x.std(0)
        return cls(x.mean(0), np.where(std > 1e-12, std, 1.0))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std


@dataclass
class RidgeResult:
    """Test R^2 and predictions per target, the chosen alpha and its validation R^2."""

    r2: float
    alpha: float
    val_r2: float
    pred_test: np.ndarray


def ridge_probe(x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray, y_va: np.ndarray, x_te: np.ndarray,
                y_te: np.ndarray, alphas: tuple[float, ...] = ALPHAS) -> list[RidgeResult]:
    """Ridge regression of each column of ``y_*`` (n, k) on ``x_*`` (n, p); alpha per target chosen on
    validation R^2, reported on test."""
    st = Standardizer.fit(x_tr)
    a, b, c = st(x_tr).astype(np.float64), st(x_va).astype(np.float64), st(x_te).astype(np.float64)
    y_tr = y_tr.reshape(len(y_tr), -1).astype(np.float64)
    y_va = y_va.reshape(len(y_va), -1).astype(np.float64)
    y_te = y_te.reshape(len(y_te), -1).astype(np.float64)
    ym = y_tr.mean(0)
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    uty = u.T @ (y_tr - ym)  # (r, k)
    out: list[RidgeResult] = []
    best: list[tuple[float, float, np.ndarray]] = [(-np.inf, alphas[0], np.zeros(a.shape[1]))] * y_tr.shape[1]
    for alpha in alphas:
        coef = vt.T @ ((s / (s ** 2 + alpha))[:, None] * uty)  # (p, k)
        pv = b @ coef + ym
        for j in range(y_tr.shape[1]):
            r = r2_score(y_va[:, j], pv[:, j])
            r = -np.inf if np.isnan(r) else r
            if r > best[j][0]:
                best[j] = (r, alpha, coef[:, j].copy())
    for j, (vr, alpha, coef) in enumerate(best):
        pred = c @ coef + ym[j]
        out.append(RidgeResult(r2_score(y_te[:, j], pred), alpha, vr, pred))
    return out


def logistic_probe(x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray, y_va: np.ndarray, x_te: np.ndarray,
                   y_te: np.ndarray, cs: tuple[float, ...] = CS, max_iter: int = 300) -> tuple[float, float]:
    """Multinomial logistic regression; ``C`` chosen on validation accuracy. Returns (test accuracy, C).

    NaN when the training labels hold a single class.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y_tr)) < 2:
        return float("nan"), float("nan")
    st = Standardizer.fit(x_tr)
    a, b, c = st(x_tr), st(x_va), st(x_te)
    best = (-1.0, cs[0], None)
    for C in cs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = LogisticRegression(C=C, max_iter=max_iter).fit(a, y_tr)
        acc = float((clf.predict(b) == y_va).mean()) if len(y_va) else 0.0
        if acc > best[0]:
            best = (acc, C, clf)
    clf = best[2]
    assert clf is not None
    return float((clf.predict(c) == y_te).mean()), float(best[1])
