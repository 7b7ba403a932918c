"""``eoreps fit``: train a supervised model (classify, multilabel, segment, regress, multitask)."""

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
from eoreps.tasks.fit_config import FitConfig


@with_data_options
@from_config(FitConfig)
def fit(
    ctx: typer.Context,
    cfg: FitConfig,
    data: DataOpt = "simeo",
    seed: SeedOpt = 0,
    out: OutOpt = Path("runs/fit"),
    quick: QuickOpt = False,
    threads: ThreadsOpt = 0,
    config: ConfigOpt = None,
    data_options: dict | None = None,
) -> None:
    """Train a model on SimEO (synthetic) or a dataset folder; writes logs, checkpoints and results.json."""
    from eoreps.tasks.fit import fit as run_fit

    set_threads(threads)
    result = run_fit(cfg)
    if quick:  # the numbers of a seconds-long run are no measurement: say so on screen and in results.json
        from eoreps.smoke import mark_json, smoke_note

        detail = f"{result.epochs} epoch(s)" + (
            f", at most {cfg.max_train} training samples" if cfg.max_train else ""
        )
        mark_json(result.out / "results.json", detail)
        typer.echo(smoke_note(detail))
    synthetic = " (SimEO: synthetic data)" if cfg.data == "simeo" else ""
    for split, metrics in result.metrics.items():
        echo_kv(f"{split}{synthetic}:", {k: f"{v:.4f}" for k, v in metrics.items()})
    skipped = sum(getattr(result.datamodule, "data_info", {}).get("skipped_nodata", {}).values())
    if skipped:
        typer.echo(f"left out {skipped} samples that are entirely no-data (--skip-nodata)")
    typer.echo(f"{result.epochs} epochs in {result.seconds:.1f} s; results in {result.out / 'results.json'}")
