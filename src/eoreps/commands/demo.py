"""``eoreps demo``: the headline run on the built-in SimEO data, end to end, with a report."""

from __future__ import annotations

from pathlib import Path

import typer

from eoreps.commands.common import ConfigOpt, DataOpt, OutOpt, QuickOpt, SeedOpt


def demo(
    out: OutOpt = Path("demo_out"),
    data: DataOpt = "simeo",
    seed: SeedOpt = 0,
    quick: QuickOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Train and evaluate on SimEO (synthetic) end to end; write report.html, results.csv and figures."""
    from eoreps.demo import DemoConfig, run_demo

    cfg = DemoConfig(out=out, data=data, seed=seed, quick=quick)
    report = run_demo(cfg)
    typer.echo(f"report: {report}")
