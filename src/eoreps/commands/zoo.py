"""``eoreps zoo``: build, inspect and sparsify model zoos (populations of small trained networks)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from eoreps.commands.common import (
    ConfigOpt,
    OutOpt,
    QuickOpt,
    SeedOpt,
    ThreadsOpt,
    check_out_callback,
    echo_kv,
    echo_quick,
    explicit,
    parse_floats,
    parse_ints,
    set_threads,
)

app = typer.Typer(help="Model zoos: train populations of small networks, inspect them, prune them.",
                  no_args_is_help=True)


@app.command("build")
def build(
    ctx: typer.Context,
    out: OutOpt = Path("zoo"),
    dataset: Annotated[str | None, typer.Option(
        "--dataset", help="'digits', 'simeo' or a PATH to an MNIST-style folder (idx/csv/npz).")] = None,
    arch: Annotated[str | None, typer.Option(
        "--arch", help="cnn_s | cnn_s_rgb | cnn_digits | mlp | cnn_ms.")] = None,
    grid: Annotated[Path | None, typer.Option("--grid", help="Grid YAML of generating factors.",
                                              dir_okay=False)] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Training epochs (checkpoints 0..E).")] = None,
    preset: Annotated[str | None, typer.Option(
        "--preset", help="digits-small | mnist-cnn-s (dataset, arch, grid, epochs; options given win).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per step per model.")] = 10,
    precision: Annotated[str, typer.Option(
        "--precision", help="auto (native engine: fp32, torch: bf16), fp32 or bf16 (torch engine).")] = "auto",
    engine: Annotated[str, typer.Option(
        "--engine", help="auto (native when a C++ compiler is found), native (compiled kernel) or torch.")] = "auto",
    data_order: Annotated[str, typer.Option(
        "--data-order", help="per_model (each model its own order) or shared (faster).")] = "per_model",
    chunk_size: Annotated[int, typer.Option("--chunk-size", help="Models trained together per chunk.")] = 256,
    backend: Annotated[str, typer.Option("--backend", help="local or ray.")] = "local",
    ray_address: Annotated[str | None, typer.Option(
        "--ray-address", help="Ray cluster address ('auto' on a cluster node); default: a local Ray.")] = None,
    threads: ThreadsOpt = 0,
    seed: SeedOpt = 0,
    quick: QuickOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Train a zoo (vectorized across models), streaming a checkpoint per model and epoch to --out."""

    from eoreps.errors import ConfigError
    from eoreps.zoo.build import BuildConfig, build_zoo
    from eoreps.zoo.grid import Grid, load_grid
    from eoreps.zoo.population import TrainOptions
    from eoreps.zoo.presets import get_preset

    set_threads(threads)
    p = get_preset(preset) if preset else None
    dataset = dataset or (p.dataset if p else None) or ("digits" if not p else None)
    if dataset is None:
        raise ConfigError(f"preset '{preset}' needs --dataset PATH (an MNIST folder with idx or csv files)")
    if dataset not in ("digits", "simeo"):
        dataset = str(Path(dataset).resolve())
    arch_name = arch or (p.arch if p else "cnn_digits")
    g: Grid = load_grid(grid) if grid else (p.grid if p else Grid())
    n_epochs = epochs if epochs is not None else (p.epochs if p else 10)
    if quick:  # options the user gave (--epochs, --grid) win; the line says what --quick changed
        given = explicit(ctx)
        changes = [] if "epochs" in given or n_epochs <= 2 else [f"epochs {n_epochs} -> 2"]
        n_epochs = n_epochs if "epochs" in given else min(n_epochs, 2)
        if "grid" not in given:
            changes += [f"models {g.size} -> 16 (random)"] if g.size > 16 else []
            g = load_grid({**{k: v for k, v in g.__dict__.items()}, "sampling": "random", "n_models": min(16, g.size)})
        echo_quick(changes)
    cfg = BuildConfig(out=out, dataset=dataset, arch=arch_name, grid=g, epochs=n_epochs, seed=seed,
                      options=TrainOptions(batch_size=batch_size, precision=precision, data_order=data_order,
                                           engine=engine),
                      chunk_size=chunk_size, backend=backend, ray_address=ray_address)
    summary = build_zoo(cfg)
    echo_kv("zoo built", summary)


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
