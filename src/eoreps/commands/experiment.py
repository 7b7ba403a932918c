"""``eoreps experiment``: regenerate the published pillar-1 tables on SimEO (synthetic data)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import typer

from eoreps.cli_config import from_config
from eoreps.commands.common import ConfigOpt, OutOpt, QuickOpt, ThreadsOpt, set_threads
from eoreps.tasks.experiment_options import ExperimentOptions

app = typer.Typer(
    help="Experiments that regenerate the published tables on SimEO (synthetic).", no_args_is_help=True
)


def _done(paths: dict[str, Path]) -> None:
    typer.echo((paths["summary_md"]).read_text())
    typer.echo(f"wrote {', '.join(str(p) for p in paths.values())}")


def _settings(cfg: ExperimentOptions, cls: Any, threads: int) -> Any:
    set_threads(threads)
    return cfg.settings(cls)


def _command() -> str:
    return "eoreps " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else ""


@app.command("fusion")
@from_config(ExperimentOptions)
def fusion(ctx: typer.Context, cfg: ExperimentOptions, out: OutOpt = Path("runs/experiment_fusion"),
           quick: QuickOpt = False, threads: ThreadsOpt = 0, config: ConfigOpt = None) -> None:
    """Modality combinations x early/late fusion: classification F1/accuracy, segmentation mIoU."""
    from eoreps.tasks.experiments import FusionSettings, run_fusion

    _done(run_fusion(cfg.out, _settings(cfg, FusionSettings, threads), command=_command())[1])


@app.command("multitask")
@from_config(ExperimentOptions)
def multitask(ctx: typer.Context, cfg: ExperimentOptions, out: OutOpt = Path("runs/experiment_multitask"),
              quick: QuickOpt = False, threads: ThreadsOpt = 0, config: ConfigOpt = None) -> None:
    """Single-task vs fixed vs dynamic task weighting: IoU, MAE, R^2, MAPE, accuracy."""
    from eoreps.tasks.experiments import MultitaskSettings, run_multitask

    _done(run_multitask(cfg.out, _settings(cfg, MultitaskSettings, threads), command=_command())[1])


@app.command("uncertainty")
@from_config(ExperimentOptions)
def uncertainty(ctx: typer.Context, cfg: ExperimentOptions, out: OutOpt = Path("runs/experiment_uncertainty"),
                quick: QuickOpt = False, threads: ThreadsOpt = 0, config: ConfigOpt = None) -> None:
    """Plain model vs MC dropout vs MC dropout + filter, in distribution and on a shifted split."""
    from eoreps.tasks.experiments import UncertaintySettings, run_uncertainty

    _done(run_uncertainty(cfg.out, _settings(cfg, UncertaintySettings, threads), command=_command())[1])


@app.command("weak-supervision")
@from_config(ExperimentOptions)
def weak_supervision(ctx: typer.Context, cfg: ExperimentOptions, out: OutOpt = Path("runs/experiment_weak"),
                     quick: QuickOpt = False, threads: ThreadsOpt = 0, config: ConfigOpt = None) -> None:
    """Full masks vs image labels vs k-point labels at equal annotation budgets: test mIoU vs budget."""
    from eoreps.tasks.experiments.weak import WeakSettings, run_weak_supervision

    _done(run_weak_supervision(cfg.out, _settings(cfg, WeakSettings, threads), command=_command())[1])
