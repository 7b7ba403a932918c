"""One row per (method, protocol, label budget) of a study: mean, std, bootstrapped 95 % CI, identical runs.

A **label budget** is a label fraction (``fraction`` > 0, ``shots`` = 0) or a k-shot episode (``shots`` =
k labelled samples per class, ``fraction`` = 0). Budgets are ordered k-shot first (ascending k), then the
fractions (ascending), the order of the table columns. The intervals and the identical-runs flag come
from :mod:`eoreps.evaluation.study_ci` (see there for what is resampled); the cells' test predictions are
read from ``cells/<key>.npz`` when the study stored them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from eoreps.evaluation.metrics import HEADLINE
from eoreps.evaluation.study_ci import N_BOOT, bootstrap_ci, identical_runs, load_predictions

_METRIC_PREFIXES = ("acc/", "f1/", "iou/")
_METRICS = ("oa", "aa", "f1_macro", "f1_micro", "map", "miou", "pixel_acc")


def with_budget(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with an int ``shots`` column (0 for fraction cells, also in results written before k-shot)."""
    shots = df["shots"] if "shots" in df.columns else pd.Series(0, index=df.index)
    return df.assign(shots=shots.fillna(0).astype(int))


def budget_label(fraction: float, shots: int) -> str:
    """``"5-shot"`` or ``"10 % labels"``."""
    return f"{int(shots)}-shot" if shots else f"{100 * float(fraction):g} % labels"


def budgets(df: pd.DataFrame) -> list[tuple[float, int]]:
    """The ``(fraction, shots)`` budgets of ``df``: k-shot ascending, then fractions ascending."""
    d = with_budget(df)
    pairs = {(float(f), int(k)) for f, k in zip(d["fraction"], d["shots"], strict=True)}
    return sorted(pairs, key=lambda p: (p[1] == 0, p[1], p[0]))


def metric_columns(df: pd.DataFrame) -> list[str]:
    """The test-metric columns of a study's results (per-class and summary metrics)."""
    return [c for c in df.columns if c.startswith(_METRIC_PREFIXES) or c in _METRICS]


def summarize(df: pd.DataFrame, task: str, cells_dir: str | Path | None = None, n_boot: int = N_BOOT,
              seed: int = 0) -> pd.DataFrame:
    """The per-(method, protocol, budget) summary of a study's cell rows.

    Args:
        df: one row per cell (:func:`eoreps.evaluation.study.collect`).
        task: the study's task (picks the headline metric).
        cells_dir: folder of the cells' ``<key>.npz`` predictions (``None``: resample the seeds only).
        n_boot: bootstrap replicates per row.
        seed: bootstrap seed.

    Returns:
        Columns ``method, protocol, budget, fraction, shots, seeds, n_train, mean, std, ci_low, ci_high,
        ci_basis, identical`` (metric values as fractions, not %).
    """
    metric = HEADLINE[task]
    d = with_budget(df)
    cols = metric_columns(d)
    rows = []
    order = {b: i for i, b in enumerate(budgets(d))}
    groups = d.groupby(["method", "protocol", "fraction", "shots"], sort=False)
    for (method, protocol, frac, shots), g in groups:
        g = g.sort_values("seed")
        v = g[metric].astype(float).to_numpy()
        preds = _predictions(g, cells_dir)
        target = preds[0] if preds else None
        seed_preds = preds[1] if preds else None
        lo, hi, basis = bootstrap_ci(task, v, target, seed_preds, n_boot=n_boot, seed=seed)
        finite = v[np.isfinite(v)]
        rows.append({
            "method": method, "protocol": protocol, "budget": budget_label(frac, shots),
            "fraction": float(frac), "shots": int(shots), "seeds": len(g),
            "n_train": float(g["n_train"].mean()) if "n_train" in g else float("nan"),
            "mean": float(finite.mean()) if len(finite) else float("nan"),
            "std": float(finite.std(ddof=1)) if len(finite) > 1 else float("nan"),
            "ci_low": lo, "ci_high": hi, "ci_basis": basis,
            "identical": identical_runs(g[cols].astype(float).to_numpy(), seed_preds),
            "_order": order[(float(frac), int(shots))],
        })
    out = pd.DataFrame(rows)
    # keep the methods' first-appearance order; budgets in table order within each
    first = {k: i for i, k in enumerate(dict.fromkeys(zip(out["method"], out["protocol"], strict=True)))}
    out["_group"] = [first[k] for k in zip(out["method"], out["protocol"], strict=True)]
    return out.sort_values(["_group", "_order"], kind="stable").drop(columns=["_group", "_order"]) \
        .reset_index(drop=True)


def _predictions(g: pd.DataFrame, cells_dir: str | Path | None) -> tuple[np.ndarray, list[np.ndarray]] | None:
    """The shared test targets and each seed's predictions of one group, or None unless every seed has
    them on the same targets."""
    if cells_dir is None or "key" not in g.columns:
        return None
    loaded = [load_predictions(Path(cells_dir) / f"{k}.npz") for k in g["key"]]
    if any(x is None for x in loaded):
        return None
    target = loaded[0][0]  # type: ignore[index]
    if any(x[0].shape != target.shape or not np.array_equal(x[0], target) for x in loaded):  # type: ignore[index]
        return None
    return target, [x[1] for x in loaded]  # type: ignore[index]
