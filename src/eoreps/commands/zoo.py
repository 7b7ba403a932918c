"""``eoreps zoo``: build, inspect and sparsify model zoos (populations of small trained networks)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from eoreps.cli_config import from_config
from eoreps.commands.common import (
    ConfigOpt,
    OutOpt,
    QuickOpt,
    SeedOpt,
    ThreadsOpt,
    check_out_callback,
    echo_kv,
    set_threads,
)
from eoreps.zoo.build_options import BuildOptions
from eoreps.zoo.inspect_options import InspectOptions, PruneOptions

app = typer.Typer(help="Model zoos: train populations of small networks, inspect them, prune them.",
                  no_args_is_help=True)


@app.command("build")
@from_config(BuildOptions)
def build(
    ctx: typer.Context,
    cfg: BuildOptions,
    out: OutOpt = Path("zoo"),
    threads: ThreadsOpt = 0,
    seed: SeedOpt = 0,
    quick: QuickOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Train a zoo (vectorized across models), streaming a checkpoint per model and epoch to --out."""
    from eoreps.zoo.build_options import run_build

    set_threads(threads)
    echo_kv("zoo built", run_build(cfg, out))


ZooOutOpt = Annotated[Path | None, typer.Option(
    "--out", help="Output directory (default: the zoo folder).", callback=check_out_callback)]


def _zoo_out_dir(zoo: Path, out: Path | None, writes: str) -> Path:
    """Where 'zoo inspect/prune' write: --out, else the zoo folder, which must then be writable."""
    from eoreps.errors import DataError
    from eoreps.io import can_write_in

    if out is not None:
        return out
    if zoo.is_dir() and not can_write_in(zoo):
        raise DataError(f"{zoo}: the zoo folder is not writable and {writes} would be written there; "
                        "pass --out DIR")
    return zoo


@app.command("inspect")
@from_config(InspectOptions)
def inspect(
    ctx: typer.Context,
    cfg: InspectOptions,
    path: Annotated[Path, typer.Argument(help="Zoo directory.")],
    out: ZooOutOpt = None,
) -> None:
    """Print counts and property distributions of a zoo and write inspect.png (to the zoo or --out)."""
    from eoreps.zoo.inspect import format_report, inspect_zoo

    out_dir = _zoo_out_dir(path, cfg.out, "inspect.png")
    typer.echo(format_report(inspect_zoo(path, verify=cfg.verify, out=out_dir)))


@app.command("prune")
@from_config(PruneOptions)
def prune(
    ctx: typer.Context,
    cfg: PruneOptions,
    path: Annotated[Path, typer.Argument(help="Zoo directory.")],
    out: ZooOutOpt = None,
) -> None:
    """Sparsified twins: magnitude-prune every model, record test accuracy against sparsity."""
    from eoreps.zoo.prune import sparsify_zoo

    out_dir = _zoo_out_dir(path, cfg.out, "sparsified.parquet/.csv/.png and twins/")
    df = sparsify_zoo(path, cfg.sparsity, cfg.epochs, out=out_dir)
    summary = df.groupby("sparsity")["test_acc"].agg(["median", "mean", "min", "max"])
    typer.echo("test accuracy against sparsity (all models)")
    typer.echo(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    typer.echo(f"wrote {out_dir / 'sparsified.parquet'}, {out_dir / 'sparsified.png'} and twins in "
               f"{out_dir / 'twins'}")
