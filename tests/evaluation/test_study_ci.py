"""Bootstrapped 95 % CIs of the study tables and the "identical runs" flag (issue 24, item 3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eoreps.evaluation.metrics import HEADLINE, task_metrics
from eoreps.evaluation.study_ci import (
    BASIS_SAMPLES,
    BASIS_SEEDS,
    bootstrap_ci,
    identical_runs,
    replicates,
    save_predictions,
)
from eoreps.evaluation.tables import write_study_report


def _literal_ci(kind, target, preds, classes, n_boot, seed):
    """Slow transcription: index the drawn samples, call the metric functions, average the drawn seeds."""
    stats = []
    for chunk_picks, chunk_idx in replicates(len(preds), len(target), n_boot, seed):
        for picks, idx in zip(chunk_picks, chunk_idx, strict=True):
            vals = []
            for s in picks:
                out = preds[s][idx].astype(float) if kind == "multilabel" else preds[s][idx]
                vals.append(task_metrics(kind, target[idx], out, classes)[HEADLINE[kind]])
            stats.append(np.nanmean(vals))
    assert len(stats) == n_boot
    return tuple(np.quantile(np.asarray(stats), [0.025, 0.975]))


def _toy(kind, rng, n=50, k=4, s=3):
    if kind == "classify":
        y = rng.integers(k, size=n)
        y[y == 3] = 0 if rng.random() < 0.5 else 3
        y[:3] = 3  # a rare class: often absent from a bootstrap draw
        preds = [np.where(rng.random(n) < 0.7, y, rng.integers(k, size=n)) for _ in range(s)]
    else:
        y = rng.random((n, k)) < 0.3
        y[:, 3] = False
        y[0, 3] = True  # a label with one positive
        preds = [np.where(rng.random((n, k)) < 0.75, y, ~y) for _ in range(s)]
    return y, preds


@pytest.mark.parametrize("kind", ["classify", "multilabel"])
def test_fast_bootstrap_equals_literal_loop(kind):
    rng = np.random.default_rng(1)
    y, preds = _toy(kind, rng)
    classes = [f"c{i}" for i in range(4)]
    scores = [task_metrics(kind, y, p.astype(float) if kind == "multilabel" else p, classes)[HEADLINE[kind]]
              for p in preds]
    lo, hi, basis = bootstrap_ci(kind, scores, y, preds, n_boot=70, seed=7)
    assert basis == BASIS_SAMPLES
    assert (lo, hi) == pytest.approx(_literal_ci(kind, y, preds, classes, 70, 7), abs=1e-12)
    assert lo < np.mean(scores) < hi
    # seeded: the same inputs and seed give the same interval, another seed another one
    assert bootstrap_ci(kind, scores, y, preds, n_boot=70, seed=7)[:2] == (lo, hi)
    assert bootstrap_ci(kind, scores, y, preds, n_boot=70, seed=8)[:2] != (lo, hi)


def test_seed_only_bootstrap_without_predictions():
    scores = [0.5, 0.6, 0.8]
    lo, hi, basis = bootstrap_ci("segment", scores, n_boot=300, seed=0)
    means = [np.mean(np.asarray(scores)[p]) for chunk, _ in replicates(3, 0, 300, 0) for p in chunk]
    assert basis == BASIS_SEEDS and (lo, hi) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))
    assert 0.5 - 1e-9 <= lo < hi <= 0.8 + 1e-9
    assert np.isnan(bootstrap_ci("classify", [float("nan")] * 2)[:2]).all()


def test_identical_runs_detected_from_outputs():
    p = np.array([0, 1, 2, 1])
    assert identical_runs(np.zeros((3, 2)), [p, p.copy(), p.copy()])
    assert not identical_runs(np.zeros((3, 2)), [p, p, np.array([0, 1, 2, 2])])  # predictions win
    assert identical_runs(np.array([[0.5, np.nan], [0.5, np.nan]]))
    assert not identical_runs(np.array([[0.5, 0.1], [0.5, 0.2]]))  # same headline, different per-class
    assert not identical_runs(np.array([[0.5, 0.1]]))  # one seed: nothing repeated


def _cells(tmp_path, identical: bool):
    """A fake finished study: two methods x linear x 100 % x 3 seeds, with stored predictions."""
    rng = np.random.default_rng(0)
    y = rng.integers(3, size=40)
    rows = []
    for method in ("frozen", "random"):
        base = np.where(rng.random(40) < 0.8, y, 0)
        for seed in range(3):
            pred = base if (identical and method == "frozen") else np.where(rng.random(40) < 0.8, y, 1)
            key = f"{method}__linear__f1__s{seed}"
            save_predictions(tmp_path / "cells" / f"{key}.npz", y, pred)
            m = task_metrics("classify", y, pred, ["a", "b", "c"])
            rows.append({"key": key, "method": method, "protocol": "linear", "fraction": 1.0, "seed": seed,
                         "task": "classify", "synthetic": False, "trainable_params": 10.0, "wall_s": 1.0,
                         "n_train": 100.0, **m})
    return pd.DataFrame(rows)


def test_tables_show_ci_and_identical_runs(tmp_path):
    df = _cells(tmp_path, identical=True)
    write_study_report(df, tmp_path, title="t", synthetic=False)
    md = (tmp_path / "tables.md").read_text(encoding="utf-8")
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary["identical"]) == [True, False]
    assert set(summary["ci_basis"]) == {BASIS_SAMPLES}
    frozen = summary.iloc[0]
    assert frozen["std"] == 0.0 and frozen["ci_low"] < frozen["mean"] < frozen["ci_high"]  # test-set spread
    assert "100 % labels 95 % CI" in md and "(3\u00a0identical\u00a0runs)" not in md
    line = next(ln for ln in md.splitlines() if ln.startswith("| frozen | linear"))
    assert "(3 identical runs)" in line and "±" not in line
    assert f"[{100 * frozen['ci_low']:.1f}, {100 * frozen['ci_high']:.1f}]" in line
    per_class = [ln for ln in md.splitlines() if ln.startswith("| frozen")][1]
    assert "3 identical runs" in per_class and "±" not in per_class
    random_line = next(ln for ln in md.splitlines() if ln.startswith("| random | linear"))
    assert "±" in random_line and "identical" not in random_line


def test_no_predictions_falls_back_to_seed_bootstrap(tmp_path):
    df = _cells(tmp_path, identical=False)
    (tmp_path / "cells" / "random__linear__f1__s2.npz").unlink()
    write_study_report(df, tmp_path, title="t", synthetic=False)
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary["ci_basis"]) == [BASIS_SAMPLES, BASIS_SEEDS]


@pytest.mark.parametrize("kind", ["classify", "multilabel"])
def test_headline_score_is_the_headline_of_task_metrics(kind):
    from eoreps.evaluation.metrics import headline_score

    y, preds = _toy(kind, np.random.default_rng(2))
    out = preds[0].astype(float) if kind == "multilabel" else preds[0]
    classes = [f"c{i}" for i in range(4)]
    assert headline_score(kind, y, out, classes) == task_metrics(kind, y, out, classes)[HEADLINE[kind]]
