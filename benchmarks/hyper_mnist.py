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

The full preset (1,000 models x 25 epochs) takes ~3 h on 2 CPU cores. A representation fit on all its
~18,200 training checkpoints would take about 1.5 h on 2 cores (30 epochs; 1,726 s measured on 5,600,
scaled by the number of checkpoints, an estimate): ``--fit-zoo-epochs`` bounds it, ``--fit-epochs`` too.
The ``--align`` fit has its own ``--aligned-fit-epochs`` / ``--aligned-fit-zoo-epochs`` (its query already
bounds its data). Results go to ``WORK/results.json``.

``--tokenizer window`` runs the same stages with the windowed representation (``--window``,
``--token-width``; docs/hyper.md) into ``WORK/rep-window`` etc. and ``WORK/results-window.json``, so the two
tokenisations can be compared on one zoo (``benchmarks/hyper_window_compare.py`` compares them at an
equal number of steps, with Kendall's tau beside R^2).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


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
                         "(its generative fit has no --align/--functional: plain, unpermuted windows); "
                         "outputs get a '-window' suffix (rep-window, evaluate-window, results-window.json)")
    ap.add_argument("--window", type=int, default=32, help="tokens per window (--tokenizer window)")
    ap.add_argument("--token-width", type=int, default=64, help="values per token (--tokenizer window)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from eoreps.hyper.augment import AugmentConfig
    from eoreps.hyper.autoencoder import ModelConfig
    from eoreps.hyper.probes import evaluate, to_markdown
    from eoreps.hyper.sample import SampleConfig, run_sample
    from eoreps.hyper.train import FitConfig, fit

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    zoo = args.zoo or build_zoo(work, args.mnist, args.n_models, args.zoo_epochs, args.seed)
    t = time.perf_counter()
    window = args.tokenizer == "window"
    sfx = "-window" if window else ""
    tok_kw = {"tokenizer": args.tokenizer, "window": args.window, "token_width": args.token_width}
    rep = work / f"rep{sfx}"
    model = ModelConfig(d_model=args.d_model, n_heads=max(1, args.d_model // 32), enc_layers=args.layers,
                        dec_layers=args.layers, latent_dim=args.latent_dim, proj_dim=args.latent_dim,
                        token_stats=args.token_stats, dropout=args.dropout)
    fit_eps = args.fit_zoo_epochs
    fit_summary = fit(FitConfig(zoo=zoo, out=rep, epochs=args.fit_epochs, seed=args.seed, model=model,
                                zoo_epochs=fit_eps, **tok_kw))
    t_fit = time.perf_counter() - t
    print(f"fit: {fit_summary} ({t_fit:.0f} s)", flush=True)
    t = time.perf_counter()
    ev = evaluate(zoo, rep, work / f"evaluate{sfx}", seed=args.seed)
    print(
        ev["header"] + to_markdown(ev["properties"]) + "\n" + to_markdown(ev["model_selection"]), flush=True
    )
    t_eval = time.perf_counter() - t
    t = time.perf_counter()
    rep_aligned = work / f"rep-aligned{sfx}"
    aligned_eps = getattr(args, "aligned_fit_zoo_epochs", fit_eps)
    aligned_fit_epochs = args.aligned_fit_epochs or args.fit_epochs
    fit_aligned = fit(FitConfig(zoo=zoo, out=rep_aligned, epochs=aligned_fit_epochs, lr=args.aligned_lr,
                                seed=args.seed, model=model, zoo_epochs=aligned_eps,
                                zoo_query=args.aligned_query or None,
                                functional=0.0 if window else args.aligned_functional,
                                augment=AugmentConfig(permute=False, align=not window), **tok_kw))
    t_fit_aligned = time.perf_counter() - t
    print(f"fit --align: {fit_aligned} ({t_fit_aligned:.0f} s)", flush=True)
    ev_aligned = evaluate(zoo, rep_aligned, work / f"evaluate-aligned{sfx}", seed=args.seed)
    print("--align representation:\n" + to_markdown(ev_aligned["properties"]), flush=True)
    t = time.perf_counter()
    sm = run_sample(
        SampleConfig(
            zoo=zoo,
            rep=work / f"{args.sample_from}{sfx}",
            out=work / f"sample-{args.sample_from}{sfx}",
            n=args.n_sample,
            epochs=[0, 1, 5],
            transfer="digits",
            seed=args.seed,
        )
    )
    print(sm["markdown"], flush=True)
    t_sample = time.perf_counter() - t

    tab = ev["properties"].set_index("property")
    r2_learned = float(tab.loc["test accuracy", "learned"])
    r2_stats = float(tab.loc["test accuracy", "s(W)"])
    ep_learned, ep_stats = float(tab.loc["epoch", "learned"]), float(tab.loc["epoch", "s(W)"])
    main_tab = next(iter(sm["tables"].values())).set_index("method")
    sampled0 = float(main_tab.iloc[0]["epoch 0"])
    sampled1, random1 = float(main_tab.iloc[0]["epoch 1"]), float(main_tab.iloc[1]["epoch 1"])
    zoo_final = float(sm["summary"]["zoo_final_mean_test_acc"])
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
    res = {"zoo": str(zoo), "tokenizer": tok_kw, "sample_from": args.sample_from,
           "aligned_query": args.aligned_query,
           "fit_zoo_epochs": fit_eps, "fit_epochs": args.fit_epochs, "aligned_fit_zoo_epochs": aligned_eps,
           "aligned_fit_epochs": aligned_fit_epochs, "aligned_functional": args.aligned_functional,
           "seconds": {"fit": round(t_fit), "fit_aligned": round(t_fit_aligned), "evaluate": round(t_eval),
                       "sample": round(t_sample)},
           "targets": [{"target": n, "measured": float(v), "pass": bool(ok)} for n, v, ok in targets],
           "properties": ev["properties"].replace({np.nan: None}).to_dict(orient="records"),
           "model_selection": ev["model_selection"].to_dict(orient="records"), "fit": fit_summary,
           "properties_aligned": ev_aligned["properties"].replace({np.nan: None}).to_dict(orient="records"),
           "fit_aligned": fit_aligned, "sample": sm["summary"]["tables"]}
    (work / f"results{sfx}.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(f"wrote {work / f'results{sfx}.json'}")


if __name__ == "__main__":
    main()
