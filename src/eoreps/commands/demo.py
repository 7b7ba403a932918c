"""``eoreps demo``: the headline study on the built-in SimEO data, end to end, with a report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from eoreps.commands.common import ConfigOpt, DataOpt, OutOpt, QuickOpt, SeedOpt, ThreadsOpt, set_threads
from eoreps.errors import ConfigError


def demo(
    out: OutOpt = Path("demo_out"),
    data: DataOpt = "simeo",
    seed: SeedOpt = 0,
    quick: QuickOpt = False,
    full: Annotated[bool, typer.Option("--full", help="Every protocol and label fraction, 5 seeds (long).")] = False,
    threads: ThreadsOpt = 0,
    config: ConfigOpt = None,
) -> None:
    """Multimodal self-supervised pretraining vs supervised from scratch at 1/10/100 % labels (SimEO is synthetic).

    Writes report.html (table + label-efficiency plot), results.csv/parquet, tables.md and the plot PNG
    under --out. A killed demo resumes where it stopped when run again with the same --out.
    """
    from eoreps.evaluation.headline import run_headline

    if quick and full:
        raise ConfigError("--quick and --full exclude each other; pick one")
    set_threads(threads)
    report = run_headline(out, seed=seed, quick=quick, full=full, data=data)
    tables = report.parent / "tables.md"
    if tables.is_file():  # the headline table (first section of tables.md) on the terminal
        sections = tables.read_text(encoding="utf-8").split("\n## ")
        typer.echo("\n## ".join(sections[:2]).strip())
    typer.echo(f"report: {report}")
