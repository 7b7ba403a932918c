"""``eoreps hyper``: self-supervised representations of model-zoo weights (fit, evaluate, sample, demo)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
    echo_quick,
    explicit,
    parse_ints,
    set_threads,
)
from eoreps.hyper.fit_options import FitOptions

app = typer.Typer(help="Hyper-representations: self-supervised learning on the weights of model zoos.",
                  no_args_is_help=True)

ZooOpt = Annotated[Path, typer.Option("--zoo", help="Zoo directory (built with 'eoreps zoo build').")]
RepOpt = Annotated[Path, typer.Option("--rep", help="Representation directory (written by 'eoreps hyper fit').")]


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


# --quick for 'hyper evaluate' / 'hyper sample': a smoke run that checks the pipeline in seconds; its tables
# are marked as such (not a measurement). Options the user gave win.
EVALUATE_QUICK = {"max_rows": 500}  # training checkpoints per probe
SAMPLE_QUICK = {"n": 4, "top_k": 8, "epochs": "0,1"}  # sampled models, anchors, fine-tuning epochs


def _quick(ctx: typer.Context, values: dict[str, Any], small: dict[str, Any]) -> dict[str, Any]:
    """``values`` with ``small`` applied except where the user gave the option; prints what changed."""
    from types import SimpleNamespace

    from eoreps.quick import shrink

    box = SimpleNamespace(**values)
    echo_quick(shrink(box, small, keep=explicit(ctx)))
    return vars(box)


@app.command("evaluate")
def evaluate_cmd(
    ctx: typer.Context,
    zoo: ZooOpt,
    rep: RepOpt,
    out: Annotated[Path | None, typer.Option("--out", help="Output directory (default REP/evaluate-ZOONAME).",
        callback=check_out_callback)] = None,
    early_epoch: Annotated[int | None, typer.Option(
        "--early-epoch", help="Checkpoint used to predict final accuracy (default 1).")] = None,
    max_rows: Annotated[int, typer.Option("--max-rows", help="Cap on training checkpoints per probe.")] = 6000,
    threads: ThreadsOpt = 0,
    seed: SeedOpt = 0,
    quick: Annotated[bool, typer.Option("--quick", help="Smoke run in seconds: at most 500 training checkpoints "
                                        "per probe (--max-rows); tables are marked as a smoke run.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Predict model properties from W, s(W) and the learned embedding (ridge / logistic probes)."""
    from eoreps.hyper.probes import evaluate, to_markdown

    set_threads(threads)
    if quick:
        max_rows = int(_quick(ctx, {"max_rows": max_rows}, EVALUATE_QUICK)["max_rows"])
    res = evaluate(zoo, rep, out, early_epoch, max_rows, seed, smoke=quick)
    typer.echo(res["header"] + to_markdown(res["properties"]))
    typer.echo("model selection (Spearman rho of predicted vs true final test accuracy)")
    typer.echo(res["smoke"] + to_markdown(res["model_selection"]))
    typer.echo(f"wrote {res['out']}/properties.md, properties.csv, model_selection.md/.csv")


@app.command("sample")
def sample_cmd(
    ctx: typer.Context,
    zoo: ZooOpt,
    rep: RepOpt,
    n: Annotated[int, typer.Option("--n", help="Number of models to sample.")] = 50,
    top_k: Annotated[int, typer.Option("--top-k", help="Best training models the density is fitted on.")] = 30,
    activation: Annotated[str | None, typer.Option(
        "--activation", help="Activation of the sampled models (default: that of the best model).")] = None,
    epochs: Annotated[str, typer.Option("--epochs", help="Fine-tuning epochs to report.")] = "0,1,5",
    transfer: Annotated[str | None, typer.Option(
        "--transfer", help="Also fine-tune on this dataset ('digits', or an MNIST-style PATH), resized.")] = None,
    bandwidth_scale: Annotated[float, typer.Option(
        "--bandwidth-scale", help="KDE bandwidth as a multiple of Scott's; < 1 samples closer to the best models.")] = 1.0,
    out: Annotated[Path | None, typer.Option("--out", help="Output directory (default REP/sample).",
        callback=check_out_callback)] = None,
    threads: ThreadsOpt = 0,
    seed: SeedOpt = 0,
    quick: Annotated[bool, typer.Option("--quick", help="Smoke run in seconds: 4 sampled models (--n), 8 anchors "
                                        "(--top-k), epochs 0,1; tables are marked as a smoke run.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Sample weights from a KDE on the embeddings of the best models; evaluate zero-shot and fine-tuned."""
    from eoreps.hyper.sample import SampleConfig, run_sample

    set_threads(threads)
    if quick:
        small = _quick(ctx, {"n": n, "top_k": top_k, "epochs": epochs}, SAMPLE_QUICK)
        n, top_k, epochs = int(small["n"]), int(small["top_k"]), str(small["epochs"])
    eps = parse_ints(epochs, "--epochs")
    res = run_sample(SampleConfig(zoo=zoo, rep=rep, out=out, n=n, top_k=top_k, activation=activation, epochs=eps,
                                  transfer=transfer, seed=seed, bandwidth_scale=bandwidth_scale, smoke=quick))
    typer.echo(res["markdown"])
    if res["note"]:
        typer.echo(f"note: {res['note']}", err=True)
    typer.echo(f"wrote {res['out']}/sample.md, sample.csv, sample.png, sampled.safetensors")


@app.command("demo")
def demo_cmd(
    out: OutOpt = Path("hyper_demo"),
    epochs: Annotated[int | None, typer.Option("--epochs", help="Representation training epochs.")] = None,
    seed: SeedOpt = 0,
    quick: QuickOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Digits zoo -> hyper-representation -> property table (markdown + CSV under OUT)."""
    from eoreps.hyper.demo import run_demo

    res = run_demo(out, quick=quick, seed=seed, epochs=epochs)
    typer.echo(res["markdown"])
    echo_kv("timings (s)", res["times"])
    typer.echo(f"wrote {out}/properties.md and {out}/properties.csv")
