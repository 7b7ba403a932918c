"""Tables: aggregate results over seeds (mean +- std) and render them as markdown or HTML."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

SYNTHETIC_NOTE = (
    "SimEO is synthetic: a generator of co-registered multimodal scenes with known ground truth. "
    "Numbers on SimEO show how methods compare under controlled conditions; they are not "
    "measurements on real satellite data."
)


def mean_std_table(
    df: pd.DataFrame, by: Sequence[str], metrics: Sequence[str], digits: int = 3, scale: float = 1.0
) -> pd.DataFrame:
    """Aggregate rows (one per seed) into ``mean +- std`` strings per group.

    Args:
        df: long results, one row per (group, seed).
        by: grouping columns (kept, in first-appearance order).
        metrics: numeric columns to aggregate.
        digits: decimals shown.
        scale: multiply values first (e.g. 100 for percentages).

    Returns:
        one row per group; metric cells like ``"0.812 ± 0.010"`` and a column ``n`` (seeds).
    """
    missing = [c for c in [*by, *metrics] if c not in df.columns]
    if missing:
        raise KeyError(f"results lack columns {missing}; have {list(df.columns)}")
    rows = []
    for key, g in df.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key, strict=True))
        for m in metrics:
            v = g[m].astype(float).to_numpy() * scale
            v = v[np.isfinite(v)]
            if len(v) == 0:
                row[m] = "n/a"
            elif len(v) == 1:
                row[m] = f"{v[0]:.{digits}f}"
            else:
                row[m] = f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"
        row["n"] = len(g)
        rows.append(row)
    return pd.DataFrame(rows)


# Columns holding counts (parameters, seeds, samples, epochs): shown as integers even when stored as floats
# (aggregations and protocol results turn them into 1234.0).
_COUNT_COLUMN = re.compile(r"param|^n$|^n_|(^|_)(epochs?|steps?|models|count)$", re.IGNORECASE)
_NBSP = "\u00a0"


def _count_cell(v: object) -> object:
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and np.isfinite(v) \
            and float(v).is_integer():
        return f"{int(v):,}"
    return v


def _nowrap(v: object) -> object:
    """``"67.5 ± 1.6"`` with non-breaking spaces, so a table cell never wraps between mean and std."""
    return v.replace(" ± ", f"{_NBSP}±{_NBSP}") if isinstance(v, str) else v


def display_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` prepared for a rendered table (markdown, HTML): count columns (parameters, ``n``, epochs)
    as integers with thousands separators, ``mean ± std`` cells unbreakable. Values are unchanged in CSV."""
    out = df.copy()
    for c in out.columns:
        if _COUNT_COLUMN.search(str(c)):
            out[c] = out[c].map(_count_cell).astype(object)
        elif not pd.api.types.is_numeric_dtype(out[c]):
            out[c] = out[c].map(_nowrap)
    return out


def markdown_table(df: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """Render a DataFrame as a GitHub markdown table (no extra dependency); see :func:`display_frame`."""

    def cell(v: object) -> str:
        if isinstance(v, (float, np.floating)):
            return "n/a" if not np.isfinite(v) else format(float(v), floatfmt)
        return str(v).replace("|", "\\|")

    df = display_frame(df)
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(cell(v) for v in r.tolist()) + " |")
    return "\n".join(lines) + "\n"
