"""``eoreps data``: generate SimEO, inspect any supported dataset folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from eoreps.cli_config import from_config
from eoreps.commands.common import ConfigOpt, OutOpt, SeedOpt, with_data_options
from eoreps.data.options import GenerateOptions, InspectOptions
from eoreps.data.pack_options import PackConfig

app = typer.Typer(help="Generate the built-in SimEO data or inspect a dataset folder.", no_args_is_help=True)


@app.command("generate")
@from_config(GenerateOptions)
def generate(
    ctx: typer.Context,
    cfg: GenerateOptions,
    out: OutOpt = Path("simeo_data"),
    seed: SeedOpt = 0,
    config: ConfigOpt = None,
) -> None:
    """Generate SimEO (synthetic!) patches, and optionally scenes, into a folder."""
    from eoreps.data.simeo import SimEOParams, write_simeo

    params = SimEOParams(patch_size=cfg.patch_size)
    path = write_simeo(cfg.out, n=cfg.n, seed=cfg.seed, params=params, scenes=cfg.scenes,
                       power_plants=cfg.power_plants)
    typer.echo(f"wrote {cfg.n} SimEO patches (synthetic data) to {path}")


@app.command("inspect")
@from_config(InspectOptions)
@with_data_options
def inspect(
    ctx: typer.Context,
    cfg: InspectOptions,
    path: Annotated[Path, typer.Argument(help="Dataset folder or file (format detected).")],
    data_options: dict | None = None,
) -> None:
    """Recognise the format and print samples, modalities, bands, statistics, classes, no-data."""
    from eoreps.data.inspect import inspect_path

    open_kw = {**cfg.open_kwargs(), **(data_options or {})}
    report = inspect_path(path, max_samples=cfg.max_samples or None, **open_kw)
    typer.echo(report.to_text())


@app.command("pack")
@from_config(PackConfig)
@with_data_options
def pack(
    ctx: typer.Context,
    cfg: PackConfig,
    source: Annotated[str, typer.Argument(help="Dataset folder or file (format detected), 'simeo', or with "
                                               "--torchgeo the dataset's root.")],
    out: OutOpt = Path("packed"),
    seed: SeedOpt = 0,
    config: ConfigOpt = None,
    data_options: dict | None = None,
) -> None:
    """Pack a dataset into LitData streaming chunks at native resolution (+ manifest, labels, statistics)."""
    from eoreps.data.pack import MANIFEST, verify_pack
    from eoreps.data.pack import pack as run_pack

    opts = cfg.pack_options(source, data_options)
    if not (cfg.verify and (opts.out / MANIFEST).is_file()):
        typer.echo(run_pack(opts).summary())
    if cfg.verify:
        typer.echo(verify_pack(opts.out, samples=cfg.verify_samples, seed=cfg.seed).summary())
