"""Options shared by every eoreps command, so they are spelled and documented once.

``--config FILE.yaml`` fills any option of the command from a YAML mapping (keys are option names,
``-`` or ``_``); options given on the command line win. Unknown keys are an error, never ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import click
import typer

from eoreps.cli_config import (  # noqa: F401 (re-exported: commands import them from here)
    config_keys_of,
    config_only_value,
    echo_quick,
    explicit,
    parse_devices,
    parse_floats,
    parse_ints,
    parse_list,
)
from eoreps.config import read_yaml
from eoreps.errors import ConfigError, unknown_name


def _config_callback(ctx: typer.Context, param: click.Parameter, value: Path | None) -> Path | None:
    if value is None:
        return None
    data = read_yaml(value)
    params = {p.name: p for p in ctx.command.params if p.name and p.name != "config"}
    for key in list(data):
        if key not in params:
            if config_only_value(ctx, key, data.pop(key), f"{value}: key '{key}'"):
                continue  # a field of the command's config that is not a command-line option
            known = sorted({*params, *config_keys_of(ctx)})
            raise ConfigError(f"{value}: {unknown_name('option', key, known).args[0]}")
        data[key] = _config_value(ctx, params[key], data[key], f"{value}: key '{key}'")
    ctx.default_map = {**(ctx.default_map or {}), **data}
    return value


def _config_value(ctx: typer.Context, param: click.Parameter, raw: Any, where: str) -> Any:
    """Check one YAML value with the option's own type, so a bad value is blamed on the file and key
    (not on the command-line option). A YAML list for a comma-separated option is joined with commas."""
    if raw is None:
        return None
    if isinstance(raw, list) and param.nargs == 1 and not getattr(param, "multiple", False):
        raw = ",".join(str(v) for v in raw)
    if isinstance(raw, (dict, list)):
        raise ConfigError(f"{where}: expected a single value, got {type(raw).__name__} {raw!r}")
    runtime = getattr(param, "get_runtime_param", None)  # Typer's own coercion (Typer >= 0.20)
    try:
        if runtime is not None:
            runtime().coerce(raw, param=param, ctx=ctx)
        else:
            param.type_cast_value(ctx, raw)
    except (click.ClickException, typer.TyperException, ValueError, TypeError) as e:
        reason = str(getattr(e, "message", e)).splitlines()[0]
        raise ConfigError(f"{where}: {raw!r} is not a valid value ({reason})") from None
    return raw


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
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (data, splits, initialisation).", min=0)]


def check_out_callback(value: Path | None) -> Path | None:
    """Option callback for every ``--out``: refuse a file, a path under a file or an unwritable folder
    while the options are parsed, before any work (``None`` = the command's own default, checked later)."""
    from eoreps.io import check_out_dir

    return None if value is None else check_out_dir(value, "--out")


OutOpt = Annotated[Path, typer.Option("--out", help="Output directory (created if missing).",
                                      callback=check_out_callback)]
QuickOpt = Annotated[bool, typer.Option("--quick", help="Shrink the run to seconds (tests, smoke checks).")]
ThreadsOpt = Annotated[int, typer.Option(
    "--threads", help="torch CPU threads (0 = torch's default: one per physical core). Two jobs on one "
                      "machine should split the cores, e.g. --threads 8 each on 16 cores.")]

def set_threads(threads: int) -> None:
    """Apply ``--threads`` (0 leaves torch's default)."""
    if threads < 0:
        raise ConfigError(f"--threads {threads}: must be >= 0 (0 = torch's default)")
    if threads:
        import torch

        torch.set_num_threads(threads)


DataOpt = Annotated[
    str,
    typer.Option("--data", help="'simeo' (built-in synthetic default) or a PATH to a dataset folder."),
]


def echo_kv(title: str, rows: dict[str, Any]) -> None:
    """Print a small key/value block."""
    typer.echo(title)
    width = max((len(k) for k in rows), default=0)
    for k, v in rows.items():
        typer.echo(f"  {k:<{width}}  {v}")


# ------------------------------------------------------------------------------------ dataset options
# Options of the dataset loader (GeoTIFF folder: eoreps.data.datasets.geotiff_folder), shared by fit,
# pretrain, evaluate and `data inspect`. Only options the user sets are passed on, so other formats,
# which do not have them, still open; a set option the format lacks is a one-line error.
IdColumnOpt = Annotated[str, typer.Option("--id-column", help="labels.csv id column (default: the first of "
                                          "id, sample_id, patch_id, name).")]
SplitColumnOpt = Annotated[str, typer.Option("--split-column", help="labels.csv column of train/val/test "
                                             "(default: 'split'; without one, an automatic split).")]
SplitRatiosOpt = Annotated[str, typer.Option("--split-ratios", help="Automatic split: train,val,test shares "
                                             "(default 0.7,0.15,0.15), stratified, seeded by --seed.")]
SplitSeedOpt = Annotated[int | None, typer.Option("--split-seed", help="Seed of the automatic split "
                                                  "(default: --seed).")]
MaskClassesOpt = Annotated[
    str,
    typer.Option(
        "--mask-classes",
        help="Mask codes to classes: '10:tree,20:shrub' "
        "or a file of 'code name' lines (default: mask_classes.txt, "
        "else the codes found).",
    ),
]
IgnoreIndexOpt = Annotated[int, typer.Option("--ignore-index", help="Mask code meaning no label.")]
SkipNodataOpt = Annotated[
    bool,
    typer.Option(
        "--skip-nodata",
        help="Leave out samples with a modality that is entirely no-data (default: refuse them).",
    ),
]

_DATA_OPTIONS: dict[str, tuple[Any, Any]] = {
    "id_column": (IdColumnOpt, ""),
    "split_column": (SplitColumnOpt, ""),
    "split_ratios": (SplitRatiosOpt, ""),
    "split_seed": (SplitSeedOpt, None),
    "mask_classes": (MaskClassesOpt, ""),
    "ignore_index": (IgnoreIndexOpt, 255),
    "skip_nodata": (SkipNodataOpt, False),
}


def data_options(**values: Any) -> dict[str, Any]:
    """The dataset options among ``values`` (the ``--id-column`` ... CLI values) that differ
    from their defaults."""
    out = {k: v for k, v in values.items() if k in _DATA_OPTIONS and v != _DATA_OPTIONS[k][1]}
    if "split_ratios" in out:
        out["split_ratios"] = tuple(parse_floats(out["split_ratios"], "--split-ratios"))
    return out


def with_data_options(command: Any) -> Any:
    """Give a Typer command the dataset options (``--id-column``, ``--split-column``, ``--split-ratios``,
    ``--split-seed``, ``--mask-classes``, ``--ignore-index``, ``--skip-nodata``), spelled here once.

    The command declares a ``data_options`` parameter and receives :func:`data_options` of the values.
    """
    import functools
    import inspect

    sig = inspect.signature(command, eval_str=True)
    if "data_options" not in sig.parameters:
        raise TypeError(f"{command.__name__} needs a data_options parameter for @with_data_options")
    keep = [p for p in sig.parameters.values() if p.name != "data_options"]
    extra = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a)
             for n, (a, d) in _DATA_OPTIONS.items()]

    @functools.wraps(command)
    def wrapper(*args: Any, **kw: Any) -> Any:
        values = {n: kw.pop(n, d) for n, (_, d) in _DATA_OPTIONS.items()}
        return command(*args, data_options=data_options(**values), **kw)

    wrapper.__signature__ = sig.replace(parameters=[*keep, *extra])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in [*keep, *extra]}
    return wrapper
