"""``eoreps embed``: embed a dataset with a pretrained run's exported encoders (options: ``EmbedConfig``)."""

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
    echo_kv,
    set_threads,
    with_data_options,
)
from eoreps.evaluation.embed import EmbedConfig


@with_data_options
@from_config(EmbedConfig)
def embed(
    ctx: typer.Context,
    cfg: EmbedConfig,
    data: DataOpt = "simeo",
    out: OutOpt = Path("runs/embed"),
    seed: SeedOpt = 0,
    quick: QuickOpt = False,
    threads: ThreadsOpt = 0,
    config: ConfigOpt = None,
    data_options: dict | None = None,
) -> None:
    """Embed a dataset with a pretrained run (backbone and joint spaces): .npy arrays, meta.parquet,
    thumbnails."""
    from eoreps.evaluation.embed import run_embed

    set_threads(threads)
    result = run_embed(cfg)
    if quick:
        from eoreps.smoke import smoke_note

        typer.echo(smoke_note(f"{sum(result.splits.values())} samples"))
    rows = {**{f"split {s}": n for s, n in result.splits.items()},
            **{f"{name}.npy": f"{shape[0]} x {shape[1]}" for name, shape in result.arrays.items()},
            "throughput": f"{result.samples_per_s:.1f} samples/s", "out": str(result.out)}
    echo_kv(f"embedded {cfg.data} with {cfg.backbone}", rows)
    if cfg.plot:
        from eoreps.report.maps import plot_embedding_maps

        for png in plot_embedding_maps(result.out):
            typer.echo(f"map: {png}")
