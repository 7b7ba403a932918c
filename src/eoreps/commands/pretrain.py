"""``eoreps pretrain``: self-supervised pretraining with checkpoints, resume and backbone export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from eoreps.commands.common import (
    ConfigOpt,
    DataOpt,
    OutOpt,
    QuickOpt,
    SeedOpt,
    ThreadsOpt,
    echo_kv,
    echo_quick,
    explicit,
    parse_devices,
    parse_list,
    set_threads,
    with_data_options,
)
from eoreps.errors import ConfigError

METHOD_NAMES = ["simclr", "multimodal", "moco", "byol", "dino", "mae", "tile2vec", "rotation", "jigsaw",
                "band-prediction", "inpainting"]


def parse_kwargs(value: str, what: str) -> dict[str, Any]:
    """``"img_size=32,patch_size=4"`` -> ``{"img_size": 32, "patch_size": 4}`` (values parsed as YAML scalars)."""
    import yaml

    out: dict[str, Any] = {}
    for item in [v.strip() for v in value.split(",") if v.strip()]:
        if "=" not in item:
            raise ConfigError(f"{what}: '{item}' is not KEY=VALUE; write e.g. 'img_size=32,patch_size=4'")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = yaml.safe_load(v)
        except yaml.YAMLError:
            raise ConfigError(f"{what}: cannot parse the value of '{k}' ('{v}')") from None
    return out


@with_data_options
def pretrain(
    ctx: typer.Context,
    method: Annotated[str, typer.Option("--method", help=f"One of: {', '.join(METHOD_NAMES)}.")] = "multimodal",
    data: DataOpt = "simeo",
    modalities: Annotated[str, typer.Option("--modalities", help="Comma-separated image modalities.")] = "s2,s1",
    backbone: Annotated[str, typer.Option("--backbone", help="cnn-tiny|cnn-small|cnn-base|timm:<name> (default: the "
                                          "method's: a ViT for mae, cnn-small for the others).")] = "",
    backbone_kwargs: Annotated[str, typer.Option("--backbone-kwargs",
                                                 help="Backbone options KEY=VALUE,... (ViT default: "
                                                      "img_size=the images' size,patch_size=4).")] = "",
    method_kwargs: Annotated[str, typer.Option("--method-kwargs",
                                               help="Method options KEY=VALUE,... e.g. temperature=0.1.")] = "",
    epochs: Annotated[int, typer.Option("--epochs", help="Passes over the training data.")] = 30,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Samples per step and process.")] = 256,
    lr: Annotated[float, typer.Option("--lr", help="Peak AdamW learning rate.")] = 2e-3,
    max_samples: Annotated[int, typer.Option("--max-samples", help="Cap on training samples (0 = all).")] = 0,
    precision: Annotated[str, typer.Option("--precision", help="32-true or bf16-mixed.")] = "32-true",
    devices: Annotated[str, typer.Option("--devices", help="Processes/devices per node (int or 'auto').")] = "1",
    num_nodes: Annotated[int, typer.Option("--num-nodes", help="Nodes (multi-node DDP).")] = 1,
    strategy: Annotated[str, typer.Option("--strategy", help="Lightning strategy: auto, ddp, ddp_spawn.")] = "auto",
    accelerator: Annotated[str, typer.Option("--accelerator", help="auto, cpu, gpu.")] = "auto",
    checkpoint_every: Annotated[int, typer.Option("--checkpoint-every", help="Steps between checkpoints.")] = 50,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT/checkpoints/last.ckpt.")] = False,
    knn: Annotated[bool, typer.Option("--knn/--no-knn", help="Online kNN accuracy on the validation split.")] = True,
    out: OutOpt = Path("runs/pretrain"),
    seed: SeedOpt = 0,
    quick: QuickOpt = False,
    threads: ThreadsOpt = 0,
    config: ConfigOpt = None,
    data_options: dict | None = None,
) -> None:
    """Pretrain a backbone without labels; export it (safetensors + JSON card) for any downstream task."""
    from eoreps.ssl.pretrain import PretrainConfig, run_pretrain

    if method not in METHOD_NAMES:
        from eoreps.errors import unknown_name

        raise unknown_name("pretraining method", method, METHOD_NAMES)
    set_threads(threads)
    dev = parse_devices(devices)
    cfg = PretrainConfig(
        method=method, data=data, modalities=parse_list(modalities, "modality"), backbone=backbone,
        backbone_kwargs=parse_kwargs(backbone_kwargs, "--backbone-kwargs"),
        method_kwargs=parse_kwargs(method_kwargs, "--method-kwargs"), epochs=epochs, batch_size=batch_size, lr=lr,
        max_samples=max_samples or None, precision=precision, seed=seed, out=str(out),
        checkpoint_every=checkpoint_every, resume=resume, knn=knn, accelerator=accelerator, devices=dev,
        num_nodes=num_nodes, strategy=strategy, quick=quick, data_options=dict(data_options or {}),
        quick_keep=sorted(explicit(ctx)),
    )
    echo_quick(cfg.quick_changes())
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
        echo_kv(f"pretrained {method} ({data})", rows)
