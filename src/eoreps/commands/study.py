"""``eoreps study label-efficiency``: the resumable grid of methods x protocols x label fractions x seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from eoreps.cli_config import from_config
from eoreps.commands.common import DataOpt, OutOpt, QuickOpt, ThreadsOpt, set_threads
from eoreps.evaluation.study_options import StudyOptions

app = typer.Typer(help="Label-efficiency studies (resumable grids with tables, plot and report).",
                  no_args_is_help=True)


@app.command("label-efficiency")
@from_config(StudyOptions)
def label_efficiency(
    ctx: typer.Context,
    cfg: StudyOptions,
    config: Annotated[
        Path,
        typer.Option(
            "--config",
            help="Study YAML (data, methods, protocols, fractions, seeds, options; see docs/evaluation.md).",
            dir_okay=False,
        ),
    ],
    out: OutOpt = Path("study_out"),
    data: DataOpt = "",
    quick: QuickOpt = False,
    threads: ThreadsOpt = 0,
) -> None:
    """Run (or resume) a label-efficiency study; finished cells are never recomputed.

    --data and --seed override the YAML's data path and first seed; --quick shrinks the YAML's grid to a smoke
    run and prints what it changed.
    """
    from eoreps.evaluation.study import run_study

    set_threads(threads)
    report = run_study(cfg.load(), cfg.out)
    typer.echo(f"results: {out / 'results.csv'}\ntables:  {out / 'tables.md'}")
    if (out / "label_efficiency.png").is_file():  # not written when the study has no fractions (k-shot only)
        typer.echo(f"plot:    {out / 'label_efficiency.png'}")
    if (out / "kshot.png").is_file():
        typer.echo(f"k-shot:  {out / 'kshot.png'}")
    typer.echo(f"CIs:     {out / 'summary.csv'}")
    typer.echo(f"report:  {report}")
