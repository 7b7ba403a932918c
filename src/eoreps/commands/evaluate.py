"""``eoreps evaluate``: one backbone (or a random initialisation) under one or more protocols and label fractions.

A thin front end to the study machinery (:mod:`eoreps.evaluation.study`): the run is a one-method study
(plus baselines with ``--baselines``), so it is resumable and writes the same results, tables, plot and report.
"""

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
    echo_quick,
    explicit,
    parse_floats,
    parse_list,
    set_threads,
    with_data_options,
)


@with_data_options
def evaluate(
    ctx: typer.Context,
    backbone: Annotated[str, typer.Option("--backbone", help="Backbone file/folder saved by eoreps (one per "
                                          "modality allowed), or 'random' for a random initialisation.")] = "random",
    protocol: Annotated[str, typer.Option("--protocol", help="linear, knn, finetune, adapter (comma-separated for several).")] = "linear",
    task: Annotated[str, typer.Option("--task", help="classify, multilabel or segment.")] = "classify",
    fractions: Annotated[str, typer.Option("--fractions", help="Label fractions of the training split.")] = "0.01,0.1,0.2,0.5,1.0",
    seeds: Annotated[int, typer.Option("--seeds", help="Number of seeds (subsets, initialisation, training).")] = 3,
    modalities: Annotated[str, typer.Option("--modalities", help="Modalities to load, e.g. s2,s1.")] = "s2,s1",
    arch: Annotated[str, typer.Option("--arch", help="Architecture of random / supervised encoders.")] = "cnn-small",
    fusion: Annotated[str, typer.Option("--fusion", help="early or late fusion for random encoders.")] = "late",
    baselines: Annotated[bool, typer.Option("--baselines/--no-baselines", help="Add random init and supervised "
                                            "from scratch (each modality, early and late fusion) to the table.")] = False,
    size: Annotated[int, typer.Option("--size", help="Resize images to SIZE x SIZE (0 = native).")] = 0,
    k: Annotated[int, typer.Option("--k", help="kNN neighbours.")] = 20,
    temperature: Annotated[float, typer.Option("--temperature", help="kNN vote temperature.")] = 0.07,
    adapter: Annotated[str, typer.Option("--adapter", help="auto, spectral or lora.")] = "auto",
    epochs: Annotated[int, typer.Option("--epochs", help="Epochs of trained protocols.")] = 30,
    label_noise: Annotated[float, typer.Option("--label-noise", help="Corrupt this fraction of the training "
                                               "labels (val/test stay clean).")] = 0.0,
    noise_kind: Annotated[str, typer.Option("--noise-kind", help="uniform | class (label noise).")] = "uniform",
    out: OutOpt = Path("eval_out"),
    data: DataOpt = "simeo",
    seed: SeedOpt = 0,
    quick: QuickOpt = False,
    threads: ThreadsOpt = 0,
    config: ConfigOpt = None,
    data_options: dict | None = None,
) -> None:
    """Evaluate a backbone with frozen (linear, kNN), fine-tuning or adapter protocols at several label fractions."""
    from eoreps.evaluation.encoders import MethodSpec
    from eoreps.evaluation.protocols import PROTOCOLS
    from eoreps.evaluation.study import DataConfig, StudyConfig, quick_study, run_study

    set_threads(threads)
    protos = parse_list(protocol, "protocol", [p for p in PROTOCOLS if p != "supervised"])
    mods = parse_list(modalities, "modality")
    if backbone == "random":
        method = MethodSpec("random-init", backbone="random", arch=arch, fusion=fusion if len(mods) > 1 else "early",
                            modalities=mods)
    else:
        name = Path(backbone).stem if Path(backbone).suffix else Path(backbone).name
        method = MethodSpec(name.replace("__", "_") or "backbone", backbone=backbone)
    cfg = StudyConfig(
        name=f"Evaluation of {method.name}", data=DataConfig(data=data, task=task, modalities=mods, size=size or None,
                                                         options=dict(data_options or {})),
        methods=[method], protocols=protos, fractions=parse_floats(fractions, "--fractions"), seeds=seeds, seed=seed,
        baselines=baselines, baseline_arch=arch, label_noise=label_noise, noise_kind=noise_kind)
    cfg.options.knn.k, cfg.options.knn.temperature = k, temperature
    cfg.options.adapter.kind = adapter
    cfg.options.train.epochs = epochs
    if quick:  # options the user gave win
        given = explicit(ctx)
        keep = {path for opt, path in (("seeds", "seeds"), ("epochs", "options.train.epochs"), ("size", "data.size"))
                if opt in given}
        changes: list[str] = []
        cfg = quick_study(cfg, keep, changes)
        echo_quick(changes)
    report = run_study(cfg, out)
    typer.echo((out / "tables.md").read_text())
    typer.echo(f"report: {report}")
