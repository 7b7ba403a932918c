"""``eoreps pretrain``: self-supervised pretraining with checkpoints, resume and backbone export."""

from __future__ import annotations

from pathlib import Path

import typer

from eoreps.cli_config import from_config
from eoreps.cli_config import parse_kwargs as parse_kwargs  # re-exported (its old home)
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
from eoreps.ssl.methods.registry import list_methods  # the names only: imports no method (cheap)
from eoreps.ssl.pretrain import PretrainConfig

METHOD_NAMES = list_methods()


@with_data_options
@from_config(PretrainConfig)
def pretrain(
    ctx: typer.Context,
    cfg: PretrainConfig,
    data: DataOpt = "simeo",
    out: OutOpt = Path("runs/pretrain"),
    seed: SeedOpt = 0,
    quick: QuickOpt = False,
    threads: ThreadsOpt = 0,
    config: ConfigOpt = None,
    data_options: dict | None = None,
) -> None:
    """Pretrain a backbone without labels; export it (safetensors + JSON card) for any downstream task."""
    from eoreps.ssl.pretrain import run_pretrain

    if cfg.method not in METHOD_NAMES:
        from eoreps.errors import unknown_name

        raise unknown_name("pretraining method", cfg.method, METHOD_NAMES)
    set_threads(threads)
    result = run_pretrain(cfg)
    if result.encoders:
        rows = {"steps": result.steps, "wall time": f"{result.wall_time_s:.1f} s",
                **{f"encoder {k}": str(p) for k, p in result.encoders.items()},
                "checkpoint": str(result.checkpoint)}
        rows.update({k: f"{v:.4f}" for k, v in result.metrics.items()
                     if k.endswith(("knn_acc", "std_ratio", "erank")) and not k.startswith("monitor/")})
        if quick:
            from eoreps.smoke import smoke_note

            typer.echo(smoke_note(f"{result.steps} steps"))
        echo_kv(f"pretrained {cfg.method} ({data})", rows)
