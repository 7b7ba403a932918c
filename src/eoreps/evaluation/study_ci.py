"""Bootstrapped 95 % confidence intervals of a study's headline metric, and "identical runs" detection.

**What is resampled.** A table cell (method, protocol, label budget) averages the headline metric over
``S`` seeds, each evaluated on the same ``N`` test samples. Two things make that mean uncertain: the
seeds (subset, initialisation, training) and the finite test set. The interval is a *two-level
(hierarchical) percentile bootstrap*: each of ``n_boot`` replicates draws ``S`` seeds with replacement
and, independently, ``N`` test samples with replacement (the same samples for every seed of the
replicate: the seeds are paired on one test set), recomputes the metric of every drawn seed on the drawn
samples, and averages; the interval is the 2.5 and 97.5 percentiles of these averages. With three seeds
a bootstrap over seeds alone has only ten distinct replicates and says nothing when the seeds agree;
the test-sample level still measures how much the number would move on another test set of that size.

The test-sample level needs every seed's test predictions, which the study stores next to each cell
(``cells/<key>.npz``: ``target`` and ``pred``, see :func:`save_predictions`) for single-label (predicted
class) and multi-label (thresholded predictions) tasks. Segmentation cells and cells of studies run before
this existed have no predictions: their interval resamples the seeds only, and the ``ci_basis`` column
says which was used (``seeds x test samples`` or ``seeds``).

**Identical runs.** When every seed of a cell produced the same test predictions (or, without
predictions, the same value of every metric), the seeds are one run repeated (e.g. a linear probe on the
frozen features of a pretrained backbone at 100 % of the labels: same subset, deterministic fit), so a
``± 0.0`` would pretend a stability that was never measured. :func:`identical_runs` detects it from the
outputs, never from the protocol name, and the tables print ``(N identical runs)`` instead of the std.

The metrics are recomputed from bootstrap *weights* (how often each test sample was drawn) with matrix
products instead of calling :mod:`eoreps.evaluation.metrics` per replicate (scikit-learn's per-call
overhead times thousands of replicates); ``tests/evaluation/test_study_ci.py`` checks them against a
literal loop over the drawn indices that calls those metric functions. Cost (measured, one thread, busy
2-core VM): about 6 s of CPU per table cell with 125,000 multi-label test samples (19 labels, 3 seeds),
3 s single-label; nothing per cell of the grid (the intervals are computed when the tables are written).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from eoreps.io import atomic_path

N_BOOT = 1000
"""Bootstrap replicates per table cell."""
CI_LEVEL = 0.95
BASIS_SAMPLES = "seeds x test samples"
BASIS_SEEDS = "seeds"
_CHUNK = 64


def compact_predictions(kind: str, output: np.ndarray) -> np.ndarray | None:
    """What the bootstrap needs of a protocol's test output: ``(N,)`` predicted classes (single-label),
    ``(N, K)`` bool predictions at probability 0.5 (multi-label), ``None`` for segmentation."""
    output = np.asarray(output)
    if kind == "classify":
        return (output.argmax(1) if output.ndim == 2 else output).astype(np.int64)
    if kind == "multilabel":
        return output >= 0.5
    return None


def save_predictions(path: str | Path, target: np.ndarray, pred: np.ndarray) -> Path:
    """Write one cell's test targets and compact predictions as ``.npz`` (atomically)."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, target=np.asarray(target), pred=np.asarray(pred))
    return path


def load_predictions(path: str | Path) -> tuple[np.ndarray, np.ndarray] | None:
    """``(target, pred)`` of a cell, or ``None`` when the file is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            return z["target"], z["pred"]
    except (OSError, ValueError, KeyError):
        return None


def replicates(n_seeds: int, n_test: int, n_boot: int, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The bootstrap draws, seeded, in chunks of at most 64 replicates: ``(seed picks (b, S), test-sample
    indices (b, N))`` per chunk, ``n_boot`` rows in all. ``n_test = 0`` draws seeds only (empty indices)."""
    rng = np.random.default_rng(seed)
    for start in range(0, n_boot, _CHUNK):
        b = min(_CHUNK, n_boot - start)
        picks = rng.integers(n_seeds, size=(b, n_seeds))
        idx = rng.integers(n_test, size=(b, n_test)) if n_test else np.zeros((b, 0), dtype=np.int64)
        yield picks, idx


def _weighted_headline(kind: str, target: np.ndarray, pred: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Headline metric of every seed under each row of bootstrap weights: ``(B, N)`` -> ``(B, S)``.

    Single-label: average accuracy (mean recall over classes present in the drawn samples); multi-label:
    average F1 over labels present in the drawn samples (F1 = 0 where a label has no prediction and no
    truth, as scikit-learn's ``zero_division=0``). Same definitions as :mod:`eoreps.evaluation.metrics`.
    """
    out = np.empty((w.shape[0], pred.shape[0]))
    if kind == "classify":
        k = int(max(target.max(), pred.max())) + 1
        onehot = np.eye(k, dtype=np.float64)[target]  # (N, K)
        support = w @ onehot  # (B, K)
        present = support > 0
        for s in range(pred.shape[0]):
            correct = w @ (onehot * (pred[s] == target)[:, None])
            recall = np.where(present, correct / np.maximum(support, 1e-300), np.nan)
            with np.errstate(invalid="ignore"):
                out[:, s] = _nanmean_rows(recall)
        return out
    y = target > 0.5
    present = (w @ y.astype(np.float64)) > 0
    for s in range(pred.shape[0]):
        p = pred[s].astype(bool)
        tp = w @ (p & y).astype(np.float64)
        fp = w @ (p & ~y).astype(np.float64)
        fn = w @ (~p & y).astype(np.float64)
        den = 2 * tp + fp + fn
        f1 = np.where(den > 0, 2 * tp / np.maximum(den, 1e-300), 0.0)
        out[:, s] = _nanmean_rows(np.where(present, f1, np.nan))
    return out


def _nanmean_rows(a: np.ndarray) -> np.ndarray:
    """Row means ignoring NaN; NaN for an all-NaN row (without numpy's warning)."""
    n = np.isfinite(a).sum(1)
    return np.where(n > 0, np.nansum(a, 1) / np.maximum(n, 1), np.nan)


def bootstrap_ci(kind: str, scores: Sequence[float], target: np.ndarray | None = None,
                 preds: Sequence[np.ndarray] | None = None, n_boot: int = N_BOOT,
                 seed: int = 0) -> tuple[float, float, str]:
    """The 95 % percentile bootstrap interval of the mean headline metric over seeds.

    Args:
        kind: ``classify``, ``multilabel`` or ``segment``.
        scores: the headline metric of each seed (used when there are no predictions).
        target: the test targets (``(N,)`` classes or ``(N, K)`` multi-hot), shared by the seeds.
        preds: each seed's compact test predictions (:func:`compact_predictions`), same order as
            ``scores``; ``None``: resample the seeds only.
        n_boot: replicates.
        seed: bootstrap seed (the same inputs and seed give the same interval).

    Returns:
        ``(low, high, basis)`` with ``basis`` :data:`BASIS_SAMPLES` or :data:`BASIS_SEEDS`; NaN bounds when
        no seed has a finite score.
    """
    v = np.asarray(scores, dtype=np.float64)
    use_preds = preds is not None and target is not None and kind in ("classify", "multilabel") \
        and len(preds) == len(v) and len(target) > 0
    if not use_preds:
        v = v[np.isfinite(v)]
        if len(v) == 0:
            return float("nan"), float("nan"), BASIS_SEEDS
        stats = np.concatenate([v[picks].mean(1) for picks, _ in replicates(len(v), 0, n_boot, seed)])
        return *_percentiles(stats), BASIS_SEEDS
    assert preds is not None and target is not None
    p = np.stack([np.asarray(x) for x in preds])
    n = len(target)
    stats = []
    for picks, idx in replicates(len(p), n, n_boot, seed):
        b = len(idx)
        # how often each test sample was drawn, per replicate: (b, N)
        w = np.bincount((idx + n * np.arange(b)[:, None]).ravel(), minlength=b * n).reshape(b, n)
        per_seed = _weighted_headline(kind, np.asarray(target), p, w.astype(np.float64))  # (b, S)
        stats.append(_nanmean_rows(np.take_along_axis(per_seed, picks, 1)))
    return *_percentiles(np.concatenate(stats)), BASIS_SAMPLES


def _percentiles(stats: np.ndarray) -> tuple[float, float]:
    stats = stats[np.isfinite(stats)]
    if len(stats) == 0:
        return float("nan"), float("nan")
    a = (1 - CI_LEVEL) / 2
    lo, hi = np.quantile(stats, [a, 1 - a])
    return float(lo), float(hi)


def identical_runs(metrics: np.ndarray, preds: Sequence[np.ndarray] | None = None) -> bool:
    """True when two or more seeds are the same run repeated: identical test predictions when given,
    else identical values of every metric (``metrics``: ``(S, M)``, NaN equal to NaN)."""
    if preds is not None and len(preds) >= 2:
        first = np.asarray(preds[0])
        return all(np.array_equal(first, np.asarray(q)) for q in preds[1:])
    m = np.asarray(metrics, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] < 2:
        return False
    return bool(np.all((m == m[0]) | (np.isnan(m) & np.isnan(m[0]))))
