"""``eoreps study label-efficiency``: the resumable grid of methods x protocols x label fractions x seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from eoreps.commands.common import DataOpt, OutOpt, QuickOpt, ThreadsOpt, echo_quick, set_threads

app = typer.Typer(help="Label-efficiency studies (resumable grids with tables, plot and report).",
                  no_args_is_help=True)


@app.command("label-efficiency")
def label_efficiency(
    config: Annotated[Path, typer.Option("--config", help="Study YAML (data, methods, protocols, fractions, seeds, "
                                         "options; see docs/evaluation.md).", dir_okay=False)],
    out: OutOpt = Path("study_out"),
    data: DataOpt = "",
    seed: Annotated[int | None, typer.Option("--seed", help="First seed (default: the YAML's).", min=0)] = None,
    quick: QuickOpt = False,
    threads: ThreadsOpt = 0,
) -> None:
    """Run (or resume) a label-efficiency study; finished cells are never recomputed.

    --data and --seed override the YAML's data path and first seed; --quick shrinks the YAML's grid to a smoke
    run and prints what it changed.
    """
    from eoreps.evaluation.study import load_study, quick_study, run_study

    set_threads(threads)
    cfg = load_study(config, data=data or None, seed=seed)
    if quick:
        changes: list[str] = []
        cfg = quick_study(cfg, changes=changes)
        echo_quick(changes)
    report = run_study(cfg, out)
    typer.echo(f"results: {out / 'results.csv'}\ntables:  {out / 'tables.md'}\nplot:    {out / 'label_efficiency.png'}")
    typer.echo(f"report:  {report}")
