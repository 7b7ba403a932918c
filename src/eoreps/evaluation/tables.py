"""Published-format tables and the label-efficiency plot, written from a study's results (never recomputed).

* **Label-efficiency table**: one row per method and protocol, one column per label fraction, the
  task's headline metric (average accuracy, average F1 or mIoU) as ``mean ± std`` over seeds, in %.
* **Per-class table** (one per label fraction), the layout of the Dual-SimCLR / ben-ge tables:
  single-label: per-class accuracy, AA (average accuracy) and OA (overall accuracy); multi-label:
  per-class F1, average F1, micro F1 and mAP; segmentation: per-class IoU, mIoU and pixel accuracy.
* **Plot**: headline metric against the label fraction (log x axis), one line per method and protocol,
  mean ± std band over seeds.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from eoreps.evaluation.metrics import HEADLINE
from eoreps.io import atomic_path, atomic_write_text
from eoreps.report import Section, markdown_table, mean_std_table, write_report

_PER_CLASS = {"classify": "acc/", "multilabel": "f1/", "segment": "iou/"}
_SUMMARY = {"classify": [("aa", "AA"), ("oa", "OA")],
            "multilabel": [("f1_macro", "avg F1"), ("f1_micro", "micro F1"), ("map", "mAP")],
            "segment": [("miou", "mIoU"), ("pixel_acc", "pixel acc")]}
_NAMES = {"aa": "average accuracy", "f1_macro": "average F1", "miou": "mIoU"}


def _label(df: pd.DataFrame) -> pd.Series:
    return df["method"] + " (" + df["protocol"] + ")"


def _pct(f: float) -> str:
    return f"{100 * f:g} %"


def efficiency_table(df: pd.DataFrame, task: str, digits: int = 1) -> pd.DataFrame:
    """Rows: method, protocol; columns: label fractions; cells: headline metric in % (mean ± std over
    seeds)."""
    metric = HEADLINE[task]
    rows = []
    for (method, protocol), g in df.groupby(["method", "protocol"], sort=False):
        row = {"method": method, "protocol": protocol}
        for frac, gf in sorted(g.groupby("fraction"), key=lambda t: t[0]):
            cell = mean_std_table(gf.assign(_k=0), ["_k"], [metric], digits=digits, scale=100.0)
            row[f"{_pct(frac)} labels"] = cell.iloc[0][metric]
        row["seeds"] = int(g["seed"].nunique())
        rows.append(row)
    return pd.DataFrame(rows)


def per_class_table(df: pd.DataFrame, task: str, fraction: float, digits: int = 1) -> pd.DataFrame:
    """The published per-class layout at one label fraction (values in %, mean ± std over seeds)."""
    sub = df[df["fraction"] == fraction]
    prefix = _PER_CLASS[task]
    per_class = [c for c in df.columns if c.startswith(prefix)]
    summary = [m for m, _ in _SUMMARY[task] if m in df.columns]
    # classes absent from the test set have NaN per-class values; drop such all-NaN columns
    per_class = [c for c in per_class if sub[c].notna().any()]
    t = mean_std_table(sub, ["method", "protocol"], per_class + summary, digits=digits, scale=100.0)
    return t.rename(columns={**{c: c[len(prefix):] for c in per_class}, **dict(_SUMMARY[task]), "n": "seeds"})


def efficiency_plot(df: pd.DataFrame, task: str, path: str | Path, synthetic: bool, title: str = "") -> Path:
    """Headline metric (%) against label fraction, log x axis, one line per method (protocol)."""
    from eoreps.report.plots import metric_curves, save_figure

    metric = HEADLINE[task]
    d = pd.DataFrame({"label fraction": df["fraction"].astype(float), "line": _label(df),
                      metric: 100.0 * df[metric].astype(float), "seed": df["seed"], "method": df["method"],
                      "protocol": df["protocol"]})
    fig = metric_curves(d, "label fraction", metric, "line", title=title or "Label efficiency", logx=True,
                        synthetic=synthetic, ylabel=f"{_NAMES.get(metric, metric)} (%)", color="method",
                        style="protocol")
    ax = fig.axes[0]
    fracs = sorted(d["label fraction"].unique())
    ax.set_xticks(fracs, [_pct(f) for f in fracs])
    ax.minorticks_off()
    return save_figure(fig, path)


def write_study_report(df: pd.DataFrame, out: str | Path, title: str, synthetic: bool, data_name: str = "",
                       extra_sections: list[Section] | None = None, smoke: str | None = None) -> Path:
    """Write ``results.parquet``, ``results.csv``, ``tables.md``, ``label_efficiency.png`` and
    ``report.html``.

    Args:
        df: one row per cell (:func:`eoreps.evaluation.study.collect`).
        out: output folder.
        title: report title.
        synthetic: the data is SimEO (the report and plot say so).
        data_name: shown in the report header.
        extra_sections: sections placed before the results (e.g. the pretraining summary).
        smoke: a ``--quick`` run (the text says how small): ``tables.md`` and the report say so.

    Returns:
        The path of ``report.html``.
    """
    out = Path(out)
    task = str(df["task"].iloc[0])
    df = df.sort_values(["fraction", "seed"], kind="stable")
    with atomic_path(out / "results.parquet") as tmp:
        df.to_parquet(tmp, index=False)
    with atomic_path(out / "results.csv") as tmp:
        df.to_csv(tmp, index=False)
    eff = efficiency_table(df, task)
    metric_name = _NAMES.get(HEADLINE[task], HEADLINE[task])
    md = [f"# {title}\n"]
    if smoke is not None:
        from eoreps.smoke import smoke_markdown

        md.append(smoke_markdown(smoke))
    if synthetic:
        from eoreps.report.tables import SYNTHETIC_NOTE

        md.append(f"> **Synthetic data.** {SYNTHETIC_NOTE}\n")
    md.append(f"## Label efficiency: {metric_name} (%), mean ± std over seeds\n")
    md.append(markdown_table(eff))
    tables = [(f"Label efficiency: {metric_name} (%) by label fraction, mean ± std over seeds", eff)]
    for frac in sorted(df["fraction"].unique(), reverse=True):
        t = per_class_table(df, task, frac)
        caption = f"Per-class results at {_pct(frac)} of the labels (%), mean ± std over seeds"
        md.append(f"\n## {caption}\n")
        md.append(markdown_table(t))
        tables.append((caption, t))
    atomic_write_text(out / "tables.md", "\n".join(md))
    png = efficiency_plot(df, task, out / "label_efficiency.png", synthetic, title=title)
    cost = df.groupby(["method", "protocol"], sort=False).agg(
        trainable_params=("trainable_params", "max"), seconds_per_cell=("wall_s", "mean")).reset_index()
    sections = list(extra_sections or [])
    sections.append(
        Section(
            "Label efficiency",
            paragraphs=[
                f"Task: {task}; headline metric: {metric_name}. Label fractions are stratified, nested "
                "subsets of the "
                "training split, fixed per seed and shared by every method. Test-set metrics."
            ],
            tables=tables[:1],
            figures=[("Label efficiency (log x axis), mean ± std over seeds", png.name)],
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
