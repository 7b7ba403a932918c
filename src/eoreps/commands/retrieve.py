"""``eoreps retrieve``: cross-modal and same-modality retrieval on an ``eoreps embed`` folder, against
chance."""

from __future__ import annotations

from pathlib import Path

import typer

from eoreps.cli_config import from_config
from eoreps.commands.common import ConfigOpt, OutOpt, QuickOpt
from eoreps.evaluation.retrieve import RetrieveConfig


@from_config(RetrieveConfig)
def retrieve(
    ctx: typer.Context,
    cfg: RetrieveConfig,
    out: OutOpt = Path("retrieval_out"),
    quick: QuickOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Recall@1/5/10 and mean rank vs chance per split (S1 -> S2: the same sample; S2 -> S2: a shared label),
    with a figure of query and top-5 thumbnails. Writes retrieval.md/.csv/.parquet/.png under --out."""
    from eoreps.evaluation.retrieve import run_retrieve

    result = run_retrieve(cfg)
    typer.echo((Path(cfg.out) / "retrieval.md").read_text(encoding="utf-8").strip())
    if result.figure is not None:
        typer.echo(f"figure: {result.figure}")
