"""Published-format tables and the label-efficiency plot, written from a study's results (never recomputed).

* **Label-efficiency table**: one row per method and protocol, one column per label budget (k-shot
  episodes, then label fractions), the task's headline metric (average accuracy, average F1 or mIoU) as
  ``mean ± std`` over seeds, in %, each followed by its bootstrapped 95 % confidence interval
  (``<budget> 95 % CI``, :mod:`eoreps.evaluation.study_ci`). When the seeds of a cell are one run
  repeated (identical predictions), the cell reads ``mean (3 identical runs)`` instead of ``± 0.0``.
  ``summary.csv`` holds the same numbers unformatted (:func:`eoreps.evaluation.study_summary.summarize`).
* **Per-class table** (one per label fraction), the layout of the Dual-SimCLR / ben-ge tables:
  single-label: per-class accuracy, AA (average accuracy) and OA (overall accuracy); multi-label:
  per-class F1, average F1, micro F1 and mAP; segmentation: per-class IoU, mIoU and pixel accuracy.
* **Plot**: headline metric against the label fraction (log x axis), one line per method and protocol,
  mean ± std band over seeds; k-shot episodes get the same plot against k (``kshot.png``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from eoreps.evaluation.metrics import HEADLINE
from eoreps.evaluation.study_summary import budget_label, budgets, summarize, with_budget
from eoreps.io import atomic_path, atomic_write_text
from eoreps.report import Section, markdown_table, mean_std_table, write_report

_PER_CLASS = {"classify": "acc/", "multilabel": "f1/", "segment": "iou/"}
_SUMMARY = {"classify": [("aa", "AA"), ("oa", "OA")],
            "multilabel": [("f1_macro", "avg F1"), ("f1_micro", "micro F1"), ("map", "mAP")],
            "segment": [("miou", "mIoU"), ("pixel_acc", "pixel acc")]}
_NAMES = {"aa": "average accuracy", "f1_macro": "average F1", "miou": "mIoU"}
CI_NOTE = (
    "95 % CI: percentile bootstrap over the seeds and the test samples (seeds only where no test predictions "
    "were stored, see summary.csv's ci_basis); 'N identical runs': every seed gave the same predictions, "
    "so no spread was measured."
)


def _label(df: pd.DataFrame) -> pd.Series:
    return df["method"] + " (" + df["protocol"] + ")"


def _pct(f: float) -> str:
    return f"{100 * f:g} %"


def _ci(lo: float, hi: float, digits: int) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "n/a"
    return f"[{100 * lo:.{digits}f}, {100 * hi:.{digits}f}]"


def _mean_cell(r: pd.Series, digits: int) -> str:
    """``mean ± std`` in %, ``mean (3 identical runs)`` when the seeds are one run repeated."""
    if not np.isfinite(r["mean"]):
        return "n/a"
    m = f"{100 * r['mean']:.{digits}f}"
    if r["identical"]:
        return f"{m} ({r['seeds']} identical runs)"
    return f"{m} ± {100 * r['std']:.{digits}f}" if np.isfinite(r["std"]) else m


def efficiency_table(df: pd.DataFrame, task: str, digits: int = 1, summary: pd.DataFrame | None = None
                     ) -> pd.DataFrame:
    """Rows: method, protocol; columns: label budgets (k-shot, then fractions), each with its 95 % CI
    column; cells: headline metric in % (mean ± std over seeds).

    Args:
        summary: :func:`~eoreps.evaluation.study_summary.summarize` of ``df`` (computed without test
            predictions, i.e. over seeds only, when not given).
    """
    if summary is None:
        summary = summarize(df, task)
    rows: dict[tuple[str, str], dict[str, object]] = {}
    seeds: dict[tuple[str, str], int] = {}
    for _, r in summary.iterrows():
        key = (r["method"], r["protocol"])
        row = rows.setdefault(key, {"method": key[0], "protocol": key[1]})
        row[r["budget"]] = _mean_cell(r, digits)
        row[f"{r['budget']} 95 % CI"] = _ci(r["ci_low"], r["ci_high"], digits)
        seeds[key] = max(seeds.get(key, 0), int(r["seeds"]))
    order = [budget_label(f, k) for f, k in budgets(df)]
    cols = ["method", "protocol"] + [c for b in order for c in (b, f"{b} 95 % CI")]
    out = pd.DataFrame([{**row, "seeds": seeds[k]} for k, row in rows.items()])
    return out.reindex(columns=cols + ["seeds"])


def per_class_table(df: pd.DataFrame, task: str, fraction: float, digits: int = 1, shots: int = 0,
                    identical: set[tuple[str, str]] | None = None) -> pd.DataFrame:
    """The published per-class layout at one label budget (values in %, mean ± std over seeds).

    Args:
        fraction, shots: the budget (a label fraction, or ``shots`` > 0 samples per class).
        identical: ``(method, protocol)`` pairs whose seeds are one run repeated: their cells show the value
            without ``± 0.0`` and ``seeds`` says ``N identical runs``.
    """
    d = with_budget(df)
    sub = d[(d["fraction"] == fraction) & (d["shots"] == int(shots))]
    prefix = _PER_CLASS[task]
    per_class = [c for c in df.columns if c.startswith(prefix)]
    summary = [m for m, _ in _SUMMARY[task] if m in df.columns]
    # classes absent from the test set have NaN per-class values; drop such all-NaN columns
    per_class = [c for c in per_class if sub[c].notna().any()]
    t = mean_std_table(sub, ["method", "protocol"], per_class + summary, digits=digits, scale=100.0)
    t["n"] = t["n"].astype(object)
    for i, r in t.iterrows():
        if (r["method"], r["protocol"]) in (identical or set()):
            for c in per_class + summary:
                t.at[i, c] = str(r[c]).split(" ± ")[0]
            t.at[i, "n"] = f"{r['n']} identical runs"
    return t.rename(columns={**{c: c[len(prefix):] for c in per_class}, **dict(_SUMMARY[task]), "n": "seeds"})


def efficiency_plot(df: pd.DataFrame, task: str, path: str | Path, synthetic: bool, title: str = "",
                    shots: bool = False) -> Path:
    """Headline metric (%) against label fraction (or, with ``shots``, the k of the k-shot cells), log x
    axis, one line per method (protocol)."""
    from eoreps.report.plots import metric_curves, save_figure

    metric = HEADLINE[task]
    df = with_budget(df)
    df = df[df["shots"] > 0] if shots else df[df["shots"] == 0]
    xname = "labelled samples per class" if shots else "label fraction"
    x = df["shots"].astype(float) if shots else df["fraction"].astype(float)
    d = pd.DataFrame({xname: x, "line": _label(df),
                      metric: 100.0 * df[metric].astype(float), "seed": df["seed"], "method": df["method"],
                      "protocol": df["protocol"]})
    fig = metric_curves(d, xname, metric, "line", title=title or "Label efficiency", logx=True,
                        synthetic=synthetic, ylabel=f"{_NAMES.get(metric, metric)} (%)", color="method",
                        style="protocol")
    ax = fig.axes[0]
    ticks = sorted(d[xname].unique())
    ax.set_xticks(ticks, [f"{t:g}" if shots else _pct(t) for t in ticks])
    ax.minorticks_off()
    return save_figure(fig, path)


def write_study_report(df: pd.DataFrame, out: str | Path, title: str, synthetic: bool, data_name: str = "",
                       extra_sections: list[Section] | None = None, smoke: str | None = None,
                       cells_dir: str | Path | None = None) -> Path:
    """Write ``results.parquet``, ``results.csv``, ``summary.csv``, ``tables.md``, ``label_efficiency.png``
    (``kshot.png`` with k-shot cells) and ``report.html``.

    Args:
        df: one row per cell (:func:`eoreps.evaluation.study.collect`).
        out: output folder.
        title: report title.
        synthetic: the data is SimEO (the report and plot say so).
        data_name: shown in the report header.
        extra_sections: sections placed before the results (e.g. the pretraining summary).
        smoke: a ``--quick`` run (the text says how small): ``tables.md`` and the report say so.
        cells_dir: where the cells' test predictions (``<key>.npz``) are (default: ``out/cells``); the
            confidence intervals resample the test samples where they exist.

    Returns:
        The path of ``report.html``.
    """
    out = Path(out)
    task = str(df["task"].iloc[0])
    df = with_budget(df).sort_values(["shots", "fraction", "seed"], kind="stable")
    with atomic_path(out / "results.parquet") as tmp:
        df.to_parquet(tmp, index=False)
    with atomic_path(out / "results.csv") as tmp:
        df.to_csv(tmp, index=False)
    summary = summarize(df, task, out / "cells" if cells_dir is None else cells_dir)
    with atomic_path(out / "summary.csv") as tmp:
        summary.to_csv(tmp, index=False)
    eff = efficiency_table(df, task, summary=summary)
    identical = {(r.method, r.protocol, r.budget) for r in summary.itertuples() if r.identical}
    metric_name = _NAMES.get(HEADLINE[task], HEADLINE[task])
    md = [f"# {title}\n"]
    if smoke is not None:
        from eoreps.smoke import smoke_markdown

        md.append(smoke_markdown(smoke))
    if synthetic:
        from eoreps.report.tables import SYNTHETIC_NOTE

        md.append(f"> **Synthetic data.** {SYNTHETIC_NOTE}\n")
    md.append(f"## Label efficiency: {metric_name} (%), mean ± std over seeds, bootstrapped 95 % CI\n")
    md.append(f"{CI_NOTE}\n")
    md.append(markdown_table(eff))
    tables = [(f"Label efficiency: {metric_name} (%) by label budget, mean ± std over seeds and "
               "bootstrapped 95 % CI", eff)]
    for frac, shots in reversed(budgets(df)):
        same = {(m, p) for m, p, b in identical if b == budget_label(frac, shots)}
        t = per_class_table(df, task, frac, shots=shots, identical=same)
        where = f"{shots} labelled samples per class" if shots else f"{_pct(frac)} of the labels"
        caption = f"Per-class results at {where} (%), mean ± std over seeds"
        md.append(f"\n## {caption}\n")
        md.append(markdown_table(t))
        tables.append((caption, t))
    atomic_write_text(out / "tables.md", "\n".join(md))
    figures = []
    if (df["shots"] == 0).any():
        png = efficiency_plot(df, task, out / "label_efficiency.png", synthetic, title=title)
        figures.append(("Label efficiency (log x axis), mean ± std over seeds", png.name))
    if (df["shots"] > 0).any():
        png = efficiency_plot(df, task, out / "kshot.png", synthetic, title=title, shots=True)
        figures.append(("k-shot episodes: k labelled samples per class (log x axis), mean ± std over seeds",
                        png.name))
    cost = df.groupby(["method", "protocol"], sort=False).agg(
        trainable_params=("trainable_params", "max"), seconds_per_cell=("wall_s", "mean")).reset_index()
    sections = list(extra_sections or [])
    sections.append(
        Section(
            "Label efficiency",
            paragraphs=[
                f"Task: {task}; headline metric: {metric_name}. Label fractions are stratified, nested "
                "subsets of the training split, fixed per seed and shared by every method; k-shot episodes "
                "hold k labelled samples per class (multi-label: at least k positives per label), nested "
                "across k. Test-set metrics.",
                CI_NOTE,
            ],
            tables=tables[:1],
            figures=figures,
        )
    )
    sections.append(Section("Per-class results", tables=tables[1:]))
    sections.append(
        Section(
            "Cost",
            paragraphs=["Trainable parameters per protocol and mean wall time per cell."],
            tables=[("Cost", cost)],
        )
    )
    return write_report(out, title, sections, synthetic=synthetic, meta={"data": data_name, "cells": len(df)},
                        smoke=smoke)
