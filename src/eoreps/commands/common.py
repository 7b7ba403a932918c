"""Options shared by every eoreps command, so they are spelled and documented once.

``--config FILE.yaml`` fills any option of the command from a YAML mapping (keys are option names,
``-`` or ``_``); options given on the command line win. Unknown keys are an error, never ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import click
import typer

from eoreps.config import read_yaml
from eoreps.errors import ConfigError, unknown_name


def _config_callback(ctx: typer.Context, param: click.Parameter, value: Path | None) -> Path | None:
    if value is None:
        return None
    data = read_yaml(value)
    names = {p.name for p in ctx.command.params if p.name and p.name != "config"}
    for key in data:
        if key not in names:
            raise ConfigError(f"{value}: {unknown_name('option', key, sorted(names)).args[0]}")
    ctx.default_map = {**(ctx.default_map or {}), **data}
    return value


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="YAML file of option: value pairs (command-line options win).",
        is_eager=True,
        callback=_config_callback,
        dir_okay=False,
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (data, splits, initialisation).")]
OutOpt = Annotated[Path, typer.Option("--out", help="Output directory (created if missing).")]
QuickOpt = Annotated[bool, typer.Option("--quick", help="Shrink the run to seconds (tests, smoke checks).")]
ThreadsOpt = Annotated[int, typer.Option("--threads", help="torch CPU threads (0 = torch default).")]


def set_threads(threads: int) -> None:
    """Apply ``--threads`` (0 leaves torch's default)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


DataOpt = Annotated[
    str,
    typer.Option("--data", help="'simeo' (built-in synthetic default) or a PATH to a dataset folder."),
]


def parse_list(value: str, what: str, choices: list[str] | None = None) -> list[str]:
    """Split 'a,b,c' into names, checking each against ``choices`` (one-line error if unknown)."""
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise ConfigError(f"empty list for {what}; give comma-separated names")
    if choices is not None:
        for v in items:
            if v not in choices:
                raise unknown_name(what, v, choices)
    return items


def parse_floats(value: str, what: str) -> list[float]:
    """Split '0.01,0.1,1.0' into floats with a one-line error on a bad item."""
    try:
        return [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{what}: '{value}' is not a comma-separated list of numbers") from None


def echo_kv(title: str, rows: dict[str, Any]) -> None:
    """Print a small key/value block."""
    typer.echo(title)
    width = max((len(k) for k in rows), default=0)
    for k, v in rows.items():
        typer.echo(f"  {k:<{width}}  {v}")
