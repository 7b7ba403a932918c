"""``eoreps experiment``: regenerate the published pillar-1 tables on SimEO (synthetic data)."""

from __future__ import annotations

import dataclasses
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from eoreps.commands.common import ConfigOpt, OutOpt, QuickOpt, ThreadsOpt, parse_ints, set_threads

SeedsOpt = Annotated[str, typer.Option("--seeds", help="Comma-separated seeds (default 0,1,2; --quick: 0).")]

app = typer.Typer(help="Experiments that regenerate the published tables on SimEO (synthetic).", no_args_is_help=True)


def _done(paths: dict[str, Path]) -> None:
    typer.echo((paths["summary_md"]).read_text())
    typer.echo(f"wrote {', '.join(str(p) for p in paths.values())}")


def _settings(cls: Any, quick: bool, seeds: str, threads: int) -> Any:
    set_threads(threads)
    s = cls.quick() if quick else cls()
    if seeds:
        s = dataclasses.replace(s, seeds=tuple(parse_ints(seeds, "--seeds")))
    return s


def _command() -> str:
    return "eoreps " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else ""


@app.command("fusion")
def fusion(out: OutOpt = Path("runs/experiment_fusion"), quick: QuickOpt = False, seeds: SeedsOpt = "",
           threads: ThreadsOpt = 0,
           config: ConfigOpt = None) -> None:
    """Modality combinations x early/late fusion: classification F1/accuracy, segmentation mIoU."""
    from eoreps.tasks.experiments import FusionSettings, run_fusion

    _done(run_fusion(out, _settings(FusionSettings, quick, seeds, threads), command=_command())[1])


@app.command("multitask")
def multitask(out: OutOpt = Path("runs/experiment_multitask"), quick: QuickOpt = False, seeds: SeedsOpt = "",
           threads: ThreadsOpt = 0,
           config: ConfigOpt = None) -> None:
    """Single-task vs fixed vs dynamic task weighting: IoU, MAE, R^2, MAPE, accuracy."""
    from eoreps.tasks.experiments import MultitaskSettings, run_multitask

    _done(run_multitask(out, _settings(MultitaskSettings, quick, seeds, threads), command=_command())[1])


@app.command("uncertainty")
def uncertainty(out: OutOpt = Path("runs/experiment_uncertainty"), quick: QuickOpt = False, seeds: SeedsOpt = "",
           threads: ThreadsOpt = 0,
                config: ConfigOpt = None) -> None:
    """Plain model vs MC dropout vs MC dropout + filter, in distribution and on a shifted split."""
    from eoreps.tasks.experiments import UncertaintySettings, run_uncertainty

    _done(run_uncertainty(out, _settings(UncertaintySettings, quick, seeds, threads), command=_command())[1])


@app.command("weak-supervision")
def weak_supervision(out: OutOpt = Path("runs/experiment_weak"), quick: QuickOpt = False, seeds: SeedsOpt = "",
           threads: ThreadsOpt = 0,
                     config: ConfigOpt = None) -> None:
    """Full masks vs image labels vs k-point labels at equal annotation budgets: test mIoU vs budget."""
    from eoreps.tasks.experiments.weak import WeakSettings, run_weak_supervision

    _done(run_weak_supervision(out, _settings(WeakSettings, quick, seeds, threads), command=_command())[1])
