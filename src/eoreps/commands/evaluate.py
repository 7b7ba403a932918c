"""``eoreps evaluate``: one backbone (or a random initialisation) under one or more protocols
and label fractions.

A thin front end to the study machinery (:mod:`eoreps.evaluation.study`): the run is a one-method study
(plus baselines with ``--baselines``), so it is resumable and writes the same results,
tables, plot and report.
"""

from __future__ import annotations

from pathlib import Path

import typer

from eoreps.cli_config import from_config
from eoreps.commands.common import (
    ConfigOpt,
    DataOpt,
    OutOpt,
    QuickOpt,
    SeedOpt,
    ThreadsOpt,
    set_threads,
    with_data_options,
)
from eoreps.evaluation.evaluate_config import EvaluateConfig


@with_data_options
@from_config(EvaluateConfig)
def evaluate(
    ctx: typer.Context,
    cfg: EvaluateConfig,
    out: OutOpt = Path("eval_out"),
    data: DataOpt = "simeo",
    seed: SeedOpt = 0,
    quick: QuickOpt = False,
    threads: ThreadsOpt = 0,
    config: ConfigOpt = None,
    data_options: dict | None = None,
) -> None:
    """Evaluate a backbone with frozen (linear, kNN), fine-tuning or adapter protocols at
    several label fractions."""
    from eoreps.evaluation.study import run_study, view_of

    set_threads(threads)
    study = cfg.study()
    report = run_study(study, out)
    typer.echo((out / "tables.md").read_text())
    typer.echo(f"input: {view_of(study.data)}; loader: {study.data.loader}")
    typer.echo(f"report: {report}")
