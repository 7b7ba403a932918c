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
    parse_floats,
    parse_ints,
    set_threads,
)
from eoreps.zoo.build_options import BuildOptions

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
    from eoreps.zoo.build import build_zoo

    set_threads(threads)
    echo_kv("zoo built", build_zoo(cfg.to_config(out)))


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
def inspect(
    path: Annotated[Path, typer.Argument(help="Zoo directory.")],
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Skip shard checksum verification.")] = False,
    out: ZooOutOpt = None,
) -> None:
    """Print counts and property distributions of a zoo and write inspect.png (to the zoo or --out)."""
    from eoreps.zoo.inspect import format_report, inspect_zoo

    out_dir = _zoo_out_dir(path, out, "inspect.png")
    typer.echo(format_report(inspect_zoo(path, verify=not no_verify, out=out_dir)))


@app.command("prune")
def prune(
    path: Annotated[Path, typer.Argument(help="Zoo directory.")],
    sparsity: Annotated[str, typer.Option("--sparsity", help="Comma-separated sparsity ratios.")] =
        "0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9",
    epochs: Annotated[str | None, typer.Option("--epochs", help="Comma-separated epochs (default: last).")] = None,
    out: ZooOutOpt = None,
) -> None:
    """Sparsified twins: magnitude-prune every model, record test accuracy against sparsity."""
    from eoreps.zoo.prune import sparsify_zoo

    ratios = parse_floats(sparsity, "--sparsity")
    eps = parse_ints(epochs, "--epochs") if epochs else None
    out_dir = _zoo_out_dir(path, out, "sparsified.parquet/.csv/.png and twins/")
    df = sparsify_zoo(path, ratios, eps, out=out_dir)
    summary = df.groupby("sparsity")["test_acc"].agg(["median", "mean", "min", "max"])
    typer.echo("test accuracy against sparsity (all models)")
    typer.echo(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    typer.echo(f"wrote {out_dir / 'sparsified.parquet'}, {out_dir / 'sparsified.png'} and twins in {out_dir / 'twins'}")
