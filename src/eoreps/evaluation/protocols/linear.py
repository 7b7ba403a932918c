"""Linear probe on frozen features, with the regularisation chosen on the validation split.

* single-label: scikit-learn's multinomial ``LogisticRegression`` (L-BFGS) on standardised features,
  one fit per ``C`` of :class:`~eoreps.evaluation.protocols.base.LinearOptions`;
* multi-label: a torch linear layer with per-label sigmoid (binary cross-entropy), fitted full-batch
  by L-BFGS with an L2 penalty ``1 / (2 C n) ||W||^2`` (the same scaling as scikit-learn's ``C``).
  scikit-learn's one-vs-rest logistic regression refuses labels without positives, which the small
  label fractions of BigEarthNet always have; the torch head simply learns a negative bias for them.

The ``C`` with the best validation headline metric (average accuracy / average F1) is kept and
evaluated once on the test split.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from eoreps.errors import ConfigError
from eoreps.evaluation.metrics import headline_score
from eoreps.evaluation.protocols.base import (
    Cell,
    LinearOptions,
    TrainOptions,
    frozen_features,
    precision_fields,
    score_test,
)
from eoreps.evaluation.protocols.registry import register_protocol


def _standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mu = train.mean(0, keepdims=True)
    sd = train.std(0, keepdims=True) + 1e-6
    return [(a - mu) / sd for a in (train, *others)]


def _fit_logreg(x: np.ndarray, y: np.ndarray, c: float, k: int, max_iter: int, seed: int):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    clf = LogisticRegression(C=c, max_iter=max_iter, random_state=seed)
    # one BLAS thread: these fits are small, and spinning BLAS threads on busy cores cost more than they give
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)

    def scores(z: np.ndarray) -> np.ndarray:
        dec = clf.decision_function(z)
        if dec.ndim == 1:  # two classes: scikit-learn returns the score of the second one
            dec = np.stack([-dec, dec], 1)
        out = np.full((len(z), k), -np.inf)
        out[:, clf.classes_] = dec
        return out

    return scores


def fit_multilabel_linear(
    x: np.ndarray, y: np.ndarray, c: float, max_iter: int = 200, seed: int = 0
) -> torch.nn.Linear:
    """Full-batch L-BFGS fit of ``(N, D)`` features to ``(N, K)`` multi-hot targets; returns the layer."""
    torch.manual_seed(seed)
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    layer = torch.nn.Linear(xt.shape[1], yt.shape[1])
    torch.nn.init.zeros_(layer.weight)
    with torch.no_grad():  # start from the label priors
        p = yt.mean(0).clamp(1e-3, 1 - 1e-3)
        layer.bias.copy_(torch.log(p / (1 - p)))
    lam = 1.0 / (c * len(xt))
    opt = torch.optim.LBFGS(layer.parameters(), lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (
            F.binary_cross_entropy_with_logits(layer(xt), yt, reduction="sum") / len(xt)
            + 0.5 * lam * layer.weight.pow(2).sum()
        )
        loss.backward()
        return loss

    opt.step(closure)
    return layer


@register_protocol("linear", tasks=("classify", "multilabel"), options=(LinearOptions, TrainOptions))
def run_linear(cell: Cell) -> dict[str, float]:
    """Frozen encoder + linear classifier; ``C`` chosen on validation (see the module docstring)."""
    kind = cell.data.task.kind
    if kind == "segment":
        raise ConfigError("the linear protocol needs pooled features; for segmentation use protocol 'linear' "
                          "through eoreps.evaluation.protocols.run_protocol (frozen encoder + U-Net decoder)")
    t0 = time.perf_counter()
    feats, _, precision = frozen_features(cell)
    idx = cell.train_idx
    xtr, xva, xte = _standardise(
        feats["train"][idx].numpy().astype(np.float64),
        feats["val"].numpy().astype(np.float64),
        feats["test"].numpy().astype(np.float64),
    )
    ytr = cell.data.splits["train"].target[idx].numpy()
    yva = cell.data.splits["val"].target.numpy()
    yte = cell.data.splits["test"].target.numpy()
    k = len(cell.data.classes)
    classes = cell.data.classes
    best: tuple[float, float, object] | None = None
    for c in cell.options.linear.C:
        if kind == "classify":
            model = _fit_logreg(xtr, ytr, c, k, cell.options.linear.max_iter, cell.seed)
            val_out = model(xva)
        else:
            layer = fit_multilabel_linear(xtr, ytr, c, seed=cell.seed)
            model = layer
            with torch.no_grad():
                val_out = torch.sigmoid(layer(torch.as_tensor(xva, dtype=torch.float32))).numpy()
        score = headline_score(kind, yva, val_out, classes)
        score = -np.inf if not np.isfinite(score) else score
        if best is None or score > best[0]:
            best = (score, c, model)
    assert best is not None
    _, c_best, model = best
    if kind == "classify":
        test_out = model(xte)  # type: ignore[operator]
    else:
        with torch.no_grad():
            test_out = torch.sigmoid(model(torch.as_tensor(xte, dtype=torch.float32))).numpy()  # type: ignore[operator]
    out = score_test(cell, yte, test_out)
    d = xtr.shape[1]
    out.update(n_train=float(len(idx)), trainable_params=float(d * k + k), C=float(c_best),
               val_score=float(best[0]), seconds=time.perf_counter() - t0,
               **precision_fields("feature", precision))
    return out
