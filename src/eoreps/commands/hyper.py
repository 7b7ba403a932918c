"""``eoreps hyper``: self-supervised representations of model-zoo weights (fit, evaluate, sample, demo)."""

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
    set_threads,
)
from eoreps.hyper.fit_options import FitOptions
from eoreps.hyper.options import DemoOptions, ProbeOptions, SampleConfig

app = typer.Typer(help="Hyper-representations: self-supervised learning on the weights of model zoos.",
                  no_args_is_help=True)

ZooOpt = Annotated[Path, typer.Option("--zoo", help="Zoo directory (built with 'eoreps zoo build').")]
RepOpt = Annotated[
    Path, typer.Option("--rep", help="Representation directory (written by 'eoreps hyper fit').")
]


@app.command("fit")
@from_config(FitOptions)
def fit_cmd(
    ctx: typer.Context,
    cfg: FitOptions,
    zoo: ZooOpt,
    out: OutOpt = Path("hyper_rep"),
    threads: ThreadsOpt = 0,
    seed: SeedOpt = 0,
    quick: QuickOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Train a transformer autoencoder on the zoo's training models (checkpoints in OUT; resumes)."""
    from eoreps.hyper.train import fit

    set_threads(threads)
    echo_kv("representation fitted", fit(cfg.to_config(zoo, out)))


RepOutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out", help="Output directory (default REP/evaluate-ZOONAME).", callback=check_out_callback
    ),
]


@app.command("evaluate")
@from_config(ProbeOptions)
def evaluate_cmd(
    ctx: typer.Context,
    cfg: ProbeOptions,
    zoo: ZooOpt,
    rep: RepOpt,
    out: RepOutOpt = None,
    threads: ThreadsOpt = 0,
    seed: SeedOpt = 0,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="Smoke run in seconds: at most 500 training checkpoints "
            "per probe (--max-rows); tables are marked as a smoke run.",
        ),
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Predict model properties from W, s(W) and the learned embedding (ridge / logistic probes)."""
    from eoreps.hyper.probes import RANK_NOTE, evaluate, to_markdown

    set_threads(threads)
    res = evaluate(cfg.zoo, cfg.rep, cfg.out, cfg.early_epoch, cfg.max_rows, cfg.seed, smoke=cfg.smoke,
                   plot=cfg.plot)
    typer.echo(res["header"] + to_markdown(res["properties"]))
    typer.echo(RANK_NOTE + to_markdown(res["kendall_tau"]))
    typer.echo("model selection (Spearman rho of predicted vs true final test accuracy)")
    typer.echo(res["smoke"] + to_markdown(res["model_selection"]))
    typer.echo(f"wrote {res['out']}/properties.md, properties.csv, kendall.csv, model_selection.md/.csv"
               + (", model_map.png" if res["map"] is not None else ""))


@app.command("sample")
@from_config(SampleConfig)
def sample_cmd(
    ctx: typer.Context,
    cfg: SampleConfig,
    zoo: ZooOpt,
    rep: RepOpt,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output directory (default REP/sample).", callback=check_out_callback),
    ] = None,
    threads: ThreadsOpt = 0,
    seed: SeedOpt = 0,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="Smoke run in seconds: 4 sampled models (--n), 8 anchors "
            "(--top-k), epochs 0,1; tables are marked as a smoke run.",
        ),
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Sample weights from a KDE on the embeddings of the best models; evaluate zero-shot and fine-tuned."""
    from eoreps.hyper.sample import run_sample

    set_threads(threads)
    res = run_sample(cfg)
    typer.echo(res["markdown"])
    if res["note"]:
        typer.echo(f"note: {res['note']}", err=True)
    typer.echo(f"wrote {res['out']}/sample.md, sample.csv, sample.png, sampled.safetensors")


@app.command("demo")
@from_config(DemoOptions)
def demo_cmd(
    ctx: typer.Context,
    cfg: DemoOptions,
    out: OutOpt = Path("hyper_demo"),
    seed: SeedOpt = 0,
    quick: QuickOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Digits zoo -> hyper-representation -> property table (markdown + CSV under OUT)."""
    from eoreps.hyper.demo import run_demo

    res = run_demo(cfg.out, quick=cfg.quick, seed=cfg.seed, epochs=cfg.epochs)
    typer.echo(res["markdown"])
    echo_kv("timings (s)", res["times"])
    typer.echo(f"wrote {cfg.out}/properties.md and {cfg.out}/properties.csv")
