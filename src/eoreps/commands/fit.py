"""``eoreps fit``: train a supervised model (classify, multilabel, segment, regress, multitask)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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


@with_data_options
def fit(
    ctx: typer.Context,
    task: Annotated[str, typer.Option("--task", help="classify | multilabel | segment | regress | multitask.")] = "classify",
    modalities: Annotated[str, typer.Option("--modalities", help="Comma-separated inputs, e.g. s2,s1,season.")] = "s2",
    fusion: Annotated[str, typer.Option("--fusion", help="early | late.")] = "early",
    share_weights: Annotated[bool, typer.Option("--share-weights", help="Late fusion: one backbone for all images.")] = False,
    backbone: Annotated[str, typer.Option("--backbone", help="cnn-small, cnn-tiny, timm:resnet18, ...")] = "cnn-small",
    epochs: Annotated[int, typer.Option("--epochs", help="Maximum epochs (early stopping on val loss).")] = 15,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 64,
    lr: Annotated[float, typer.Option("--lr", help="AdamW learning rate (cosine schedule).")] = 2e-3,
    weight_decay: Annotated[float, typer.Option("--weight-decay")] = 1e-4,
    dropout: Annotated[float, typer.Option("--dropout", help="Dropout in the heads (MC dropout).")] = 0.0,
    heteroscedastic: Annotated[bool, typer.Option("--heteroscedastic", help="Regression: predict mean and variance.")] = False,
    weighting: Annotated[str, typer.Option("--weighting", help="Multitask: fixed | uncertainty | dwa | gradnorm.")] = "fixed",
    task_weights: Annotated[str, typer.Option("--task-weights", help="Fixed weights, e.g. 0.15,0.7,0.15.")] = "",
    label_fraction: Annotated[float, typer.Option("--label-fraction", help="Train on this fraction of labels.")] = 1.0,
    max_train: Annotated[int, typer.Option("--max-train", help="Cap on training samples (0 = all).")] = 0,
    eval_splits: Annotated[str, typer.Option("--eval-splits", help="Splits evaluated at the end.")] = "test",
    accelerator: Annotated[str, typer.Option("--accelerator", help="cpu | gpu | auto.")] = "cpu",
    devices: Annotated[str, typer.Option("--devices", help="Number of devices or 'auto'.")] = "1",
    precision: Annotated[str, typer.Option("--precision", help="32-true | bf16-mixed | 16-mixed.")] = "32-true",
    patience: Annotated[int, typer.Option("--patience", help="Early-stopping patience (epochs).")] = 5,
    channels_last: Annotated[bool, typer.Option("--channels-last", help="Channels-last memory format.")] = False,
    num_workers: Annotated[int, typer.Option("--num-workers", help="Data loader processes.")] = 0,
    supervision: Annotated[str, typer.Option("--supervision", help="Segment: full | image | points (weak labels).")] = "full",
    points_per_class: Annotated[int, typer.Option("--points-per-class", help="--supervision points: pixels per class.")] = 1,
    cam_pooling: Annotated[str, typer.Option("--cam-pooling", help="--supervision image: lse | gap.")] = "lse",
    label_noise: Annotated[float, typer.Option("--label-noise", help="Corrupt this fraction of training labels.")] = 0.0,
    noise_kind: Annotated[str, typer.Option("--noise-kind", help="uniform | class (label noise).")] = "uniform",
    head_pooling: Annotated[str, typer.Option("--head-pooling", help="avg | attention: how image-level heads "
                                              "pool the feature map.")] = "avg",
    data: DataOpt = "simeo",
    seed: SeedOpt = 0,
    out: OutOpt = Path("runs/fit"),
    quick: QuickOpt = False,
    threads: ThreadsOpt = 0,
    config: ConfigOpt = None,
    data_options: dict | None = None,
) -> None:
    """Train a model on SimEO (synthetic) or a dataset folder; writes logs, checkpoints and results.json."""
    from eoreps.commands.common import parse_floats
    from eoreps.tasks.fit import FitConfig
    from eoreps.tasks.fit import fit as run_fit

    cfg = FitConfig(
        task=task, modalities=parse_list(modalities, "modality"), fusion=fusion, share_weights=share_weights,
        backbone=backbone, data=str(data), epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
        dropout=dropout, heteroscedastic=heteroscedastic, weighting=weighting,
        task_weights=parse_floats(task_weights, "--task-weights") if task_weights else None,
        label_fraction=label_fraction, max_train=max_train or None, eval_splits=parse_list(eval_splits, "split"),
        accelerator=accelerator, devices=parse_devices(devices), precision=precision,
        patience=patience, channels_last=channels_last, num_workers=num_workers, seed=seed, out=str(out),
        supervision=supervision, points_per_class=points_per_class, cam_pooling=cam_pooling, label_noise=label_noise,
        noise_kind=noise_kind, head_pooling=head_pooling, data_options=dict(data_options or {}),
    )
    set_threads(threads)
    if quick:  # options the user gave win; the line says what --quick changed
        from eoreps.quick import shrink

        small = {"epochs": 1, "max_train": 64, "max_eval": 64, "batch_size": 32, "backbone": "cnn-tiny"}
        if cfg.data == "simeo":
            small["simeo_n"] = 400 if task != "multitask" else 120
        echo_quick(shrink(cfg, small, keep=explicit(ctx)))
    result = run_fit(cfg)
    if quick:  # the numbers of a seconds-long run are no measurement: say so on screen and in results.json
        from eoreps.smoke import mark_json, smoke_note

        detail = f"{result.epochs} epoch(s)" + (f", at most {cfg.max_train} training samples" if cfg.max_train else "")
        mark_json(result.out / "results.json", detail)
        typer.echo(smoke_note(detail))
    synthetic = " (SimEO: synthetic data)" if cfg.data == "simeo" else ""
    for split, metrics in result.metrics.items():
        echo_kv(f"{split}{synthetic}:", {k: f"{v:.4f}" for k, v in metrics.items()})
    skipped = sum(getattr(result.datamodule, "data_info", {}).get("skipped_nodata", {}).values())
    if skipped:
        typer.echo(f"left out {skipped} samples that are entirely no-data (--skip-nodata)")
    typer.echo(f"{result.epochs} epochs in {result.seconds:.1f} s; results in {result.out / 'results.json'}")
