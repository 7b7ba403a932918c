"""``eoreps experiment``: regenerate the published pillar-1 tables on SimEO (synthetic data)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from eoreps.commands.common import ConfigOpt, OutOpt, QuickOpt

app = typer.Typer(help="Experiments that regenerate the published tables on SimEO (synthetic).", no_args_is_help=True)


def _done(paths: dict[str, Path]) -> None:
    typer.echo((paths["summary_md"]).read_text())
    typer.echo(f"wrote {', '.join(str(p) for p in paths.values())}")


def _command() -> str:
    return "eoreps " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else ""


@app.command("fusion")
def fusion(out: OutOpt = Path("runs/experiment_fusion"), quick: QuickOpt = False, config: ConfigOpt = None) -> None:
    """Modality combinations x early/late fusion: classification F1/accuracy, segmentation mIoU."""
    from eoreps.tasks.experiments import FusionSettings, run_fusion

    _done(run_fusion(out, FusionSettings.quick() if quick else FusionSettings(), command=_command())[1])


@app.command("multitask")
def multitask(out: OutOpt = Path("runs/experiment_multitask"), quick: QuickOpt = False, config: ConfigOpt = None) -> None:
    """Single-task vs fixed vs dynamic task weighting: IoU, MAE, R^2, MAPE, accuracy."""
    from eoreps.tasks.experiments import MultitaskSettings, run_multitask

    _done(run_multitask(out, MultitaskSettings.quick() if quick else MultitaskSettings(), command=_command())[1])


@app.command("uncertainty")
def uncertainty(out: OutOpt = Path("runs/experiment_uncertainty"), quick: QuickOpt = False,
                config: ConfigOpt = None) -> None:
    """Plain model vs MC dropout vs MC dropout + filter, in distribution and on a shifted split."""
    from eoreps.tasks.experiments import UncertaintySettings, run_uncertainty

    _done(run_uncertainty(out, UncertaintySettings.quick() if quick else UncertaintySettings(), command=_command())[1])
