"""``eoreps demo``: the headline study on the built-in SimEO data, end to end, with a report."""

from __future__ import annotations

from pathlib import Path

import typer

from eoreps.cli_config import from_config
from eoreps.commands.common import ConfigOpt, DataOpt, OutOpt, QuickOpt, SeedOpt, ThreadsOpt, set_threads
from eoreps.errors import ConfigError
from eoreps.evaluation.study_options import HeadlineOptions


@from_config(HeadlineOptions)
def demo(
    ctx: typer.Context,
    cfg: HeadlineOptions,
    out: OutOpt = Path("demo_out"),
    data: DataOpt = "simeo",
    seed: SeedOpt = 0,
    quick: QuickOpt = False,
    threads: ThreadsOpt = 0,
    config: ConfigOpt = None,
) -> None:
    """Multimodal SSL pretraining vs supervised from scratch at 1/10/100 % labels (SimEO is synthetic).

    Writes report.html (table + label-efficiency plot), results.csv/parquet, tables.md and the plot PNG
    under --out. A killed demo resumes where it stopped when run again with the same --out.
    """
    from eoreps.evaluation.headline import run_headline

    if cfg.quick and cfg.full:
        raise ConfigError("--quick and --full exclude each other; pick one")
    set_threads(threads)
    report = run_headline(cfg.out, seed=cfg.seed, quick=cfg.quick, full=cfg.full, data=cfg.data,
                          loader=cfg.loader)
    tables = report.parent / "tables.md"
    if tables.is_file():  # the headline table (first section of tables.md) on the terminal
        sections = tables.read_text(encoding="utf-8").split("\n## ")
        typer.echo("\n## ".join(sections[:2]).strip())
    typer.echo(f"report: {report}")
