"""The one experiment runner: a grid of fit configurations x seeds, resumable, aggregated, reported.

An experiment is a list of :class:`Variant` (labels for the table + overrides of a base
:class:`~eoreps.tasks.fit.FitConfig`) run for every seed. Each run trains in
``out/runs/<variant>/seed<k>/`` and stores its result rows in ``rows.json`` there, so a killed
experiment resumes where it stopped. ``rows_fn(result, variant)`` turns a finished fit into table rows
(default: one row per evaluation split with every metric); experiments with special evaluation (MC
dropout) pass their own.

:func:`write_outputs` writes ``results.csv`` (one row per run and split), ``summary.csv`` and
``summary.md`` (mean +- std over seeds, next to the published table), a PNG figure and ``report.html``;
every output says that SimEO is synthetic.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from eoreps.io import atomic_write_text, read_json, write_json
from eoreps.precision import keep_request
from eoreps.progress import progress
from eoreps.tasks.fit import FitConfig, FitResult, fit

Row = dict[str, Any]


@dataclass
class Variant:
    """One configuration of an experiment.

    Attributes:
        labels: table columns identifying it (e.g. ``{"modalities": "S2+S1", "fusion": "late"}``).
        overrides: :class:`FitConfig` fields that differ from the experiment's base config.
    """

    labels: dict[str, str]
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        """A folder name for this variant."""
        text = "_".join(f"{v}" for v in self.labels.values())
        return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-") or "variant"


def default_rows(result: FitResult, variant: Variant) -> list[Row]:
    """One row per evaluation split: ``split``, ``n`` and every ``<task>/<metric>``."""
    return [{"split": split, **m} for split, m in result.metrics.items()]


def run_grid(
    base: FitConfig,
    variants: Sequence[Variant],
    seeds: Sequence[int],
    out: str | Path,
    rows_fn: Callable[[FitResult, Variant], list[Row]] = default_rows,
    keep_runs: bool = False,
) -> pd.DataFrame:
    """Run every variant for every seed (skipping finished runs) and return all rows.

    Args:
        base: the shared configuration.
        variants: the grid.
        seeds: seeds (each changes data order, initialisation and label subsets).
        out: experiment folder.
        rows_fn: turns a finished run into rows (labels, seed and seconds are added).
        keep_runs: keep checkpoints and logs of each run (default: only ``rows.json``).
    """
    out = Path(out)
    rows: list[Row] = []
    jobs = [(v, s) for v in variants for s in seeds]
    for variant, seed in progress(jobs, desc="experiment runs", unit="run"):
        run_dir = out / "runs" / variant.slug / f"seed{seed}"
        done = run_dir / "rows.json"
        if done.is_file():
            rows.extend(read_json(done))
            continue
        cfg = dataclasses.replace(base, **{**variant.overrides, "seed": seed, "out": str(run_dir / "fit")})
        if "precision" not in variant.overrides:  # replace() re-resolved it: keep "auto" as asked
            keep_request(base, cfg)
        t0 = time.perf_counter()
        result = fit(cfg, quiet=True)
        seconds = time.perf_counter() - t0
        new = [{**variant.labels, "seed": seed, **r, "epochs": result.epochs, "seconds": round(seconds, 2)}
               for r in rows_fn(result, variant)]
        write_json(done, new)
        if not keep_runs:
            shutil.rmtree(run_dir / "fit" / "checkpoints", ignore_errors=True)
        rows.extend(new)
    return pd.DataFrame(rows)


@dataclass
class TableSpec:
    """How to aggregate and show an experiment's rows.

    Attributes:
        by: grouping columns (labels, ``split``...).
        metrics: ``{result column: table header}``.
        scale: per result column, a factor for display (e.g. 100 for percentages).
        digits: per result column, decimals shown (default 3).
        figure_metric: column shown in the bar figure; figure_x / figure_hue: its grouping.
    """

    by: list[str]
    metrics: dict[str, str]
    scale: dict[str, float] = field(default_factory=dict)
    digits: dict[str, int] = field(default_factory=dict)
    figure_metric: str = ""
    figure_x: str = ""
    figure_hue: str | None = None


def summarize(df: pd.DataFrame, spec: TableSpec, digits: int = 3) -> pd.DataFrame:
    """Mean +- std over seeds per group, columns renamed to the table headers."""
    from eoreps.report.tables import mean_std_table

    parts = []
    for col, header in spec.metrics.items():
        if col not in df.columns:
            continue
        tmp = f"metric::{col}"  # a metric may be called "n", like mean_std_table's seed count
        t = mean_std_table(
            df.rename(columns={col: tmp}),
            spec.by,
            [tmp],
            digits=spec.digits.get(col, digits),
            scale=spec.scale.get(col, 1.0),
        )
        parts.append(t.rename(columns={tmp: header}))
    if not parts:
        return pd.DataFrame(columns=spec.by)
    table = parts[0]
    for p in parts[1:]:
        table = table.merge(p.drop(columns=["n"]), on=spec.by, how="outer", sort=False)
    # an outer merge sorts the keys as strings ("230 min" before "26 min"): restore the grid's order
    order = df[list(spec.by)].drop_duplicates()
    table = order.merge(table, on=list(spec.by), how="inner", sort=False)
    table = table.rename(columns={"n": "seeds"})
    return table[[*spec.by, *[h for c, h in spec.metrics.items() if h in table.columns], "seeds"]]


def write_outputs(df: pd.DataFrame, out: str | Path, name: str, title: str, spec: TableSpec,
                  published: str = "", notes: Sequence[str] = (), command: str = "",
                  extra_figures: Sequence[tuple[str, str]] = (), smoke: bool = False) -> dict[str, Path]:
    """Write ``results.csv``, ``summary.csv``, ``summary.md``, ``<name>.png`` and ``report.html``.

    Args:
        df: all rows (from :func:`run_grid`).
        out: experiment folder.
        name: short experiment name (figure file name).
        title: heading (the synthetic-data note is added).
        spec: aggregation and figure.
        published: a markdown table of the published numbers to show beside ours.
        notes: paragraphs under the table (setup, caveats).
        command: the command line that reproduces the run.
        extra_figures: (caption, PNG file name in ``out``) shown as well.
        smoke: a ``--quick`` run: ``summary.md`` and the report say the numbers are not a measurement.
    """
    from eoreps.report import Section, markdown_table, write_report
    from eoreps.report.plots import bar_with_errors, save_figure
    from eoreps.report.tables import SYNTHETIC_NOTE
    from eoreps.smoke import smoke_markdown

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "results": out / "results.csv",
        "summary_csv": out / "summary.csv",
        "summary_md": out / "summary.md",
    }
    atomic_write_text(paths["results"], df.to_csv(index=False))
    table = summarize(df, spec)
    atomic_write_text(paths["summary_csv"], table.to_csv(index=False))
    figures: list[tuple[str, str]] = []
    if spec.figure_metric and spec.figure_metric in df.columns and len(df):
        plot_df = df.copy()
        plot_df[spec.figure_metric] = plot_df[spec.figure_metric].astype(float) * spec.scale.get(
            spec.figure_metric, 1.0
        )
        fig = bar_with_errors(plot_df, spec.figure_x, spec.figure_metric, hue=spec.figure_hue, title=title,
                              synthetic=True, ylabel=spec.metrics.get(spec.figure_metric, spec.figure_metric))
        paths["figure"] = save_figure(fig, out / f"{name}.png")
        figures.append((f"{spec.metrics.get(spec.figure_metric)} (mean ± std over seeds; SimEO, synthetic)",
                        paths["figure"].name))
    figures.extend(extra_figures)
    seeds = int(df["seed"].nunique()) if "seed" in df.columns else 0
    smoke_detail = f"{seeds} seed{'s' if seeds != 1 else ''}, {len(df)} result rows" if smoke else None
    md = [f"# {title} (SimEO, synthetic data)", "", f"> {SYNTHETIC_NOTE}", "",
          *([smoke_markdown(smoke_detail or "")] if smoke else []), "## Ours (SimEO, synthetic)", "",
          markdown_table(table)]
    md += [f"{n}\n" for n in notes]
    if published:
        md += ["## Published (real data; for comparison of trends, not of values)", "", published]
    for caption, png in figures:
        md += [f"![{caption}]({png})", ""]
    if command:
        md += ["Reproduce:", "", f"    {command}", ""]
    atomic_write_text(paths["summary_md"], "\n".join(md))
    sections = [
        Section(
            "Ours (SimEO, synthetic)",
            paragraphs=list(notes),
            tables=[("mean ± std over seeds", table)],
            figures=figures,
            code=[command] if command else [],
        )
    ]
    if published:
        sections.append(Section("Published", code=[published]))
    paths["report"] = write_report(
        out, f"{title} (SimEO, synthetic)", sections, synthetic=True, smoke=smoke_detail
    )
    return paths
