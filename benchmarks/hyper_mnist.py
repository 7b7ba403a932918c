"""Hyper-representation targets on the MNIST CNN-s zoo (preset ``mnist-cnn-s``).

Targets (each printed with its measured value and PASS/FAIL):

1. R^2 for test accuracy from the learned representation (``hyper evaluate``'s ``learned`` column: the
   compression token after every encoder block; the latent z alone is reported too) >= 0.90,
2. ... and at least 0.05 above s(W),
3. epoch R^2 from the learned representation above s(W),
4. sampled models reach >= 50 % of the zoo's mean final test accuracy zero-shot,
5. sampled models after 1 epoch of fine-tuning beat random initialisation after 1 epoch.

Two representations are fitted: ``WORK/rep`` with the permutation augmentation on every checkpoint
(property prediction, targets 1-3) and ``WORK/rep-aligned`` with ``--align`` on the checkpoints with test
accuracy >= 0.5 (``--aligned-query``) and the functional reconstruction loss (``--aligned-functional 0.1``):
the generative setting, targets 4-5, a decoder trained to reproduce what working models compute
(docs/hyper.md). Both are evaluated; ``--sample-from rep`` samples
from the first one instead.

Usage (reuses every stage already on disk under --work: zoo, representation, tables; a ``rep-aligned``
fitted before ``--aligned-query`` existed resumes only with ``--aligned-query ''``, or use a new --work)::

    python benchmarks/hyper_mnist.py --zoo ZOO_DIR                    # an existing mnist-cnn-s zoo
    python benchmarks/hyper_mnist.py --mnist ../shared/data/mnist      # build the preset zoo first
    python benchmarks/hyper_mnist.py --n-models 200 --zoo-epochs 10    # a smaller MNIST zoo (say so when
    reporting)

The full preset (1,000 models x 25 epochs) should build in about 18 min on 2 idle CPU cores with the native
engine (estimated: on 2026-12-06, Intel Xeon, its last 500 members x 25 epochs took 548 s). A representation
fit on all its ~18,200 training checkpoints would take about 1.5 h on 2 cores (30 epochs; 1,726 s measured
on 5,600, scaled by the number of checkpoints, an estimate): ``--fit-zoo-epochs`` bounds it, ``--fit-epochs``
too.
The ``--align`` fit has its own ``--aligned-fit-epochs`` / ``--aligned-fit-zoo-epochs`` (its query already
bounds its data). Results go to ``WORK/results.json``.

On a shared machine run the stages separately (``--stages fit``, ``evaluate``, ``fit-aligned``,
``evaluate-aligned``, ``sample``; each records its result and time in ``WORK/stages.json``): a fit killed by
``timeout`` resumes from its last finished epoch when the same command runs again, and ``results.json`` is
written from the records once ``evaluate`` and ``sample`` are there. Kendall's tau of predicted vs true
value (test checkpoints) is printed and saved beside each R^2.

``--tokenizer window`` runs the same stages with the windowed representation (``--window``,
``--token-width``; docs/hyper.md) into ``WORK/rep-window`` etc. and ``WORK/results-window.json``, so the two
tokenisations can be compared on one zoo (``benchmarks/hyper_window_compare.py`` compares them at an
equal number of steps, with Kendall's tau beside R^2).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

STAGES = ("fit", "evaluate", "fit-aligned", "evaluate-aligned", "sample")


def build_zoo(work: Path, mnist: Path, n_models: int | None, epochs: int | None, seed: int) -> Path:
    from eoreps.zoo.build import BuildConfig, build_zoo
    from eoreps.zoo.grid import load_grid
    from eoreps.zoo.presets import get_preset

    p = get_preset("mnist-cnn-s")
    grid = p.grid
    if n_models is not None:
        grid = load_grid({**grid.__dict__, "n_models": n_models})
    out = work / f"zoo-mnist-cnn-s-{grid.n_models}x{epochs or p.epochs}"
    t = time.perf_counter()
    summary = build_zoo(BuildConfig(out=out, dataset=str(mnist.resolve()), arch=p.arch, grid=grid,
                                    epochs=epochs or p.epochs, seed=seed))
    print(f"zoo: {summary} ({time.perf_counter() - t:.0f} s)", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zoo", type=Path, help="existing mnist-cnn-s zoo directory")
    ap.add_argument(
        "--mnist", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    )
    ap.add_argument("--work", type=Path, default=Path("bench_hyper_mnist"))
    ap.add_argument(
        "--n-models", type=int, default=None, help="shrink the preset zoo (random draw from its grid)"
    )
    ap.add_argument("--zoo-epochs", type=int, default=None, help="shrink the preset's 25 epochs")
    ap.add_argument("--fit-epochs", type=int, default=30)
    ap.add_argument(
        "--fit-zoo-epochs",
        type=lambda v: [int(e) for e in v.split(",")],
        default=None,
        help="train the representations on these checkpoint epochs only, e.g. '0,1,2,5,10,15,20,25' "
        "(bounds the fit time on the full preset; the probes still use every checkpoint)",
    )
    ap.add_argument(
        "--aligned-fit-epochs",
        type=int,
        default=None,
        help="epochs of the --align fit (default --fit-epochs)",
    )
    ap.add_argument(
        "--aligned-fit-zoo-epochs",
        type=lambda v: [int(e) for e in v.split(",")] if v else None,
        default=argparse.SUPPRESS,
        help="checkpoint epochs of the --align fit (default --fit-zoo-epochs; '' = all: its query "
        "already bounds its data)",
    )
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--latent-dim", type=int, default=64)
    ap.add_argument(
        "--no-token-stats",
        dest="token_stats",
        action="store_false",
        help="leave the token statistics out of the token embedding (the encoder before 2026-11-23)",
    )
    ap.add_argument("--dropout", type=float, default=0.0, help="transformer dropout")
    ap.add_argument("--n-sample", type=int, default=50)
    ap.add_argument(
        "--aligned-lr",
        type=float,
        default=1e-3,
        help="learning rate of the --align fit (1e-3 reconstructs better than 3e-4: docs/hyper.md)",
    )
    ap.add_argument("--aligned-query", default="test_acc >= 0.5",
                    help="zoo-index query selecting the checkpoints the --align representation trains on "
                         "('' = all; docs/hyper.md: 0.105 -> 0.202 zero-shot on the 300 x 10 zoo)")
    ap.add_argument(
        "--aligned-functional",
        type=float,
        default=0.1,
        help="weight of the functional reconstruction loss of the --align fit (hyper fit --functional; "
        "0 = token MSE only, the setting before 2026-11-24, docs/hyper.md)",
    )
    ap.add_argument("--sample-from", choices=("rep-aligned", "rep"), default="rep-aligned",
                    help="representation the models are sampled from")
    ap.add_argument("--tokenizer", choices=("neuron", "window"), default="neuron",
                    help="hyper fit --tokenizer: window fits the SANE-style windowed representation "
                         "(its generative fit is --align without the functional loss: windows of "
                         "matched models); "
                         "outputs get a '-window' suffix (rep-window, evaluate-window, results-window.json)")
    ap.add_argument("--window", type=int, default=32, help="tokens per window (--tokenizer window)")
    ap.add_argument("--token-width", type=int, default=64, help="values per token (--tokenizer window)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--stages",
        type=lambda v: [s for s in v.split(",") if s],
        default=list(STAGES),
        help="run only these stages (comma list of " + ", ".join(STAGES) + "); each records its result in "
        "WORK/stages[-window].json and results[-window].json is written from the records once evaluate and "
        "sample are there: run a long fit in slices ('timeout 330 ... --stages fit', repeated: it resumes "
        "from its last epoch), then the other stages",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from eoreps.hyper.augment import AugmentConfig
    from eoreps.hyper.autoencoder import ModelConfig
    from eoreps.hyper.sample import SampleConfig
    from eoreps.hyper.train import FitConfig, fit

    bad = [s for s in args.stages if s not in STAGES]
    if bad:
        ap.error(f"--stages: unknown {', '.join(bad)}; pick from {','.join(STAGES)}")
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    zoo = args.zoo or build_zoo(work, args.mnist, args.n_models, args.zoo_epochs, args.seed)
    window = args.tokenizer == "window"
    sfx = "-window" if window else ""
    tok_kw = {"tokenizer": args.tokenizer, "window": args.window, "token_width": args.token_width}
    rep, rep_aligned = work / f"rep{sfx}", work / f"rep-aligned{sfx}"
    model = ModelConfig(d_model=args.d_model, n_heads=max(1, args.d_model // 32), enc_layers=args.layers,
                        dec_layers=args.layers, latent_dim=args.latent_dim, proj_dim=args.latent_dim,
                        token_stats=args.token_stats, dropout=args.dropout)
    fit_eps = args.fit_zoo_epochs
    aligned_eps = getattr(args, "aligned_fit_zoo_epochs", fit_eps)
    aligned_fit_epochs = args.aligned_fit_epochs or args.fit_epochs
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "fit": lambda: fit(FitConfig(zoo=zoo, out=rep, epochs=args.fit_epochs, seed=args.seed, model=model,
                                     zoo_epochs=fit_eps, **tok_kw)),
        "evaluate": lambda: _evaluate(zoo, rep, work / f"evaluate{sfx}", args.seed),
        "fit-aligned": lambda: fit(FitConfig(
            zoo=zoo, out=rep_aligned, epochs=aligned_fit_epochs, lr=args.aligned_lr, seed=args.seed,
            model=model, zoo_epochs=aligned_eps, zoo_query=args.aligned_query or None,
            functional=0.0 if window else args.aligned_functional,
            augment=AugmentConfig(permute=False, align=True), **tok_kw)),
        "evaluate-aligned": lambda: _evaluate(zoo, rep_aligned, work / f"evaluate-aligned{sfx}", args.seed),
        "sample": lambda: _sample(SampleConfig(zoo=zoo, rep=work / f"{args.sample_from}{sfx}",
                                               out=work / f"sample-{args.sample_from}{sfx}", n=args.n_sample,
                                               epochs=[0, 1, 5], transfer="digits", seed=args.seed)),
    }
    stages_path = work / f"stages{sfx}.json"
    done: dict[str, Any] = json.loads(stages_path.read_text()) if stages_path.is_file() else {}
    for name in (s for s in STAGES if s in args.stages):
        t = time.perf_counter()
        result = runners[name]()
        done[name] = {"seconds": round(time.perf_counter() - t), "command": sys.argv, "result": result}
        if name.startswith("fit"):
            print(f"{name}: {result} ({done[name]['seconds']} s)", flush=True)
        stages_path.write_text(json.dumps(done, indent=2, default=str) + "\n")
    missing = [s for s in ("evaluate", "sample") if s not in done]
    if missing:
        print(f"recorded in {stages_path}; results{sfx}.json needs the stages {', '.join(missing)}")
        return
    res = _results(done, args, zoo, tok_kw, fit_eps, aligned_eps, aligned_fit_epochs)
    (work / f"results{sfx}.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(f"wrote {work / f'results{sfx}.json'}")


def _records(df: Any) -> list[dict[str, Any]]:
    return df.replace({np.nan: None}).to_dict(orient="records")


def _evaluate(zoo: Path, rep: Path, out: Path, seed: int) -> dict[str, Any]:
    """``hyper evaluate``: its tables printed, returned as records."""
    from eoreps.hyper.probes import RANK_NOTE, evaluate, to_markdown

    ev = evaluate(zoo, rep, out, seed=seed)
    print(ev["header"] + to_markdown(ev["properties"]) + "\n\n" + RANK_NOTE + to_markdown(ev["kendall_tau"])
          + "\n\n" + to_markdown(ev["model_selection"]), flush=True)
    return {k: _records(ev[k]) for k in ("properties", "kendall_tau", "model_selection")}


def _sample(cfg: Any) -> dict[str, Any]:
    """``hyper sample``: its tables printed, its summary returned."""
    from eoreps.hyper.sample import run_sample

    sm = run_sample(cfg)
    print(sm["markdown"], flush=True)
    return sm["summary"]


def _value(records: list[dict[str, Any]], prop: str, col: str) -> float:
    row = next(r for r in records if r["property"] == prop)
    return float("nan") if row[col] is None else float(row[col])


def _results(done: dict[str, Any], args: argparse.Namespace, zoo: Path, tok_kw: dict[str, Any],
             fit_eps: Any, aligned_eps: Any, aligned_fit_epochs: int) -> dict[str, Any]:
    """Targets (printed with PASS/FAIL) and everything recorded, from the stages on record."""
    ev, sm = done["evaluate"]["result"], done["sample"]["result"]
    props, taus = ev["properties"], ev["kendall_tau"]
    r2_learned, r2_stats = _value(props, "test accuracy", "learned"), _value(props, "test accuracy", "s(W)")
    ep_learned, ep_stats = _value(props, "epoch", "learned"), _value(props, "epoch", "s(W)")
    main_tab = next(iter(sm["tables"].values()))
    sampled0, sampled1 = float(main_tab[0]["epoch 0"]), float(main_tab[0]["epoch 1"])
    random1 = float(main_tab[1]["epoch 1"])
    zoo_final = float(sm["zoo_final_mean_test_acc"])
    targets = [
        ("R2(test acc) from learned >= 0.90", r2_learned, r2_learned >= 0.90),
        ("R2(test acc) learned - s(W) >= 0.05", r2_learned - r2_stats, r2_learned - r2_stats >= 0.05),
        ("R2(epoch) learned > s(W)", ep_learned - ep_stats, ep_learned > ep_stats),
        (
            "sampled zero-shot acc / zoo mean final acc >= 0.5",
            sampled0 / zoo_final,
            sampled0 >= 0.5 * zoo_final,
        ),
        ("sampled acc after 1 epoch - random init after 1 epoch > 0", sampled1 - random1, sampled1 > random1),
    ]
    print("\ntarget | measured | result")
    for name, v, ok in targets:
        print(f"{name} | {v:.3f} | {'PASS' if ok else 'FAIL'}")
    print("\nKendall tau (test checkpoints) | W | s(W) | learned | z")
    for r in taus:
        print(f"{r['property']} | " + " | ".join(f"{_value(taus, r['property'], c):.3f}" for c in
                                                  ("W", "s(W)", "learned", "z")))
    res = {"zoo": str(zoo), "tokenizer": tok_kw, "sample_from": args.sample_from,
           "aligned_query": args.aligned_query,
           "fit_zoo_epochs": fit_eps, "fit_epochs": args.fit_epochs, "aligned_fit_zoo_epochs": aligned_eps,
           "aligned_fit_epochs": aligned_fit_epochs, "aligned_functional": args.aligned_functional,
           "seconds": {k: v["seconds"] for k, v in done.items()},
           "targets": [{"target": n, "measured": float(v), "pass": bool(ok)} for n, v, ok in targets],
           "properties": props, "kendall_tau": taus, "model_selection": ev["model_selection"],
           "sample": sm["tables"], "sample_diversity": sm.get("diversity")}
    for k in ("fit", "fit-aligned"):
        if k in done:
            res[k.replace("-", "_")] = done[k]["result"]
    if "evaluate-aligned" in done:
        res["properties_aligned"] = done["evaluate-aligned"]["result"]["properties"]
        res["kendall_tau_aligned"] = done["evaluate-aligned"]["result"]["kendall_tau"]
    return res

if __name__ == "__main__":
    main()
