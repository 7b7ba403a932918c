"""``eoreps data``: generate SimEO, inspect any supported dataset folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from eoreps.commands.common import ConfigOpt, OutOpt, SeedOpt, with_data_options

app = typer.Typer(help="Generate the built-in SimEO data or inspect a dataset folder.", no_args_is_help=True)


@app.command("generate")
def generate(
    out: OutOpt = Path("simeo_data"),
    n: Annotated[int, typer.Option("--n", help="Number of patches.")] = 2000,
    scenes: Annotated[int, typer.Option("--scenes", help="Number of large scenes (for Tile2Vec).")] = 0,
    power_plants: Annotated[int, typer.Option("--power-plants", help="Number of power-plant patches (multi-task set).")] = 0,
    patch_size: Annotated[int, typer.Option("--patch-size", help="Patch side in pixels.")] = 32,
    seed: SeedOpt = 0,
    config: ConfigOpt = None,
) -> None:
    """Generate SimEO (synthetic!) patches, and optionally scenes, into a folder."""
    from eoreps.data.simeo import SimEOParams, write_simeo

    params = SimEOParams(patch_size=patch_size)
    path = write_simeo(out, n=n, seed=seed, params=params, scenes=scenes, power_plants=power_plants)
    typer.echo(f"wrote {n} SimEO patches (synthetic data) to {path}")


@app.command("inspect")
@with_data_options
def inspect(
    path: Annotated[Path, typer.Argument(help="Dataset folder or file (format detected).")],
    max_samples: Annotated[int, typer.Option("--max-samples", help="Samples read for statistics (0 = all).")] = 0,
    include_snow_cloud: Annotated[bool, typer.Option(
        "--include-snow-cloud", help="reBEN: also use the patches flagged for snow, cloud or shadow.")] = False,
    data_options: dict | None = None,
) -> None:
    """Recognise the format and print samples, modalities, bands, statistics, classes, no-data."""
    from eoreps.data.inspect import inspect_path

    if max_samples < 0:
        from eoreps.errors import ConfigError

        raise ConfigError(f"--max-samples {max_samples}: must be >= 0 (0 = all samples)")
    open_kw = {**({"include_snow_cloud": True} if include_snow_cloud else {}), **(data_options or {})}
    report = inspect_path(path, max_samples=max_samples or None, **open_kw)
    typer.echo(report.to_text())
