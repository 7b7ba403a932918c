"""Which pretrained backbone transfers best, from its weights alone (issue 23, item 4).

1. Builds (or resumes, or reuses) a zoo of SSL-pretrained EO backbones through the real CLI,
   ``eoreps zoo build --from-pretraining SPEC --out ZOO`` (default spec: simclr, byol, moco, rotation x
   seeds 0, 1, 2 x data fractions 0.25, 0.5, 1.0 = 36 ``cnn-tiny`` backbones on SimEO, each scored by linear
   probes at 1 % and 10 % of the labels: index columns ``probe_acc_1``, ``probe_acc_10``).
2. Fits the windowed hyper-representation through the real CLI, ``eoreps hyper fit --tokenizer window
   --zoo ZOO --out REP_eE`` for each of ``--fit-epochs`` (self-supervised on the weights of the fit's
   training models, with its permutation / noise / erasing augmentations; no probe accuracy is used),
   unless REP_eE exists.
3. Predicts ``probe_acc_10`` and ``probe_acc_1`` from the weights with four feature sets: ``learned``
   (the representation's compression token after every encoder block, mean over the windows) and
   ``learned z`` (its latent), ``s(W)`` (:func:`eoreps.hyper.features.weight_statistics`) and ``probing``
   (:func:`eoreps.hyper.probing_features.zoo_probing_features`); plus references that do not read the
   weights, the one-hot pretraining recipe (method and data fraction; and with the seed). With a few dozen
   models one held-out split is too small, so every model is predicted out of fold
   (:func:`eoreps.hyper.oof.oof_scores`: ``--repeats`` x ``--folds``-fold ridge, alpha by leave-one-out
   inside the training folds) and scored by R^2 and Kendall's tau (mean +- std over the repeats); and
   again leaving one pretraining seed out at a time (``cv = leave-one-seed-out``): members with the same
   seed start from the same initial weights, so random folds let the regression recognise a seen
   initialisation, which a new backbone would not have.

The build is resumable: on a shared machine run it in slices (each ``eoreps zoo build`` call reuses the
finished members), e.g.::

    until flock -x /tmp/eoreps_cpu.lock timeout 330 eoreps zoo build --from-pretraining SPEC \\
        --out ZOO --threads 2; do sleep 5; done
    python benchmarks/zoo_pretrained_predict.py --spec SPEC --zoo ZOO --fit-epochs 200,1000 --json OUT.json

SimEO is synthetic: these numbers say how the method behaves, not how EO backbones transfer.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark scripts (not a package)
import numpy as np
import pandas as pd
from hyper_window_compare import add_window_model_args  # noqa: E402

TARGETS = ("probe_acc_10", "probe_acc_1")
DEFAULT_SPEC = """methods: [simclr, byol, moco, rotation]
seeds: [0, 1, 2]
data_fractions: [0.25, 0.5, 1.0]
backbone: cnn-tiny
data: simeo
epochs: 3
max_samples: 1024
probe_fractions: [0.01, 0.1]
probe_seeds: 2
"""


def _eoreps(*args: str) -> float:
    """Run one ``eoreps`` command (the installed CLI next to this interpreter); returns its wall seconds."""
    exe = Path(sys.executable).with_name("eoreps")
    t = time.perf_counter()
    print("$ eoreps " + " ".join(args), flush=True)
    subprocess.run([str(exe), *args], check=True)
    return time.perf_counter() - t


def accuracy_summary(props: pd.DataFrame) -> dict[str, Any]:
    """Spread of the measured probe accuracies: overall and per pretraining method and data fraction."""
    out: dict[str, Any] = {}
    for col in TARGETS:
        y = props[col].to_numpy(np.float64)
        out[col] = {
            "min": float(y.min()), "max": float(y.max()), "mean": float(y.mean()), "std": float(y.std()),
            "distinct_values": int(len(np.unique(np.round(y, 6)))),
            "by_method": {str(k): round(float(v), 4) for k, v in props.groupby("method")[col].mean().items()},
            "by_data_fraction": {
                str(k): round(float(v), 4) for k, v in props.groupby("data_fraction")[col].mean().items()
            },
        }
    return out


def learned_features(zoo: Any, rep_dir: Path, tag: str) -> dict[str, np.ndarray]:
    """``learned TAG`` (compression tokens of every encoder block) and ``learned z TAG`` of every zoo
    item."""
    import torch

    from eoreps.hyper.representation import load_representation

    rep = load_representation(rep_dir)
    with torch.no_grad():
        z, blocks = rep.embed_blocks(zoo.weights_matrix())
    return {f"learned {tag}": blocks.numpy(), f"learned z {tag}": z.numpy()}


def recipe_features(props: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """One-hot ``columns`` of the index (a reference that knows how each backbone was made)."""
    return pd.get_dummies(props[columns].astype(str)).to_numpy(np.float64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", type=Path, help="--from-pretraining YAML (default: the 36-backbone spec above, "
                                              "written to ZOO.spec.yaml)")
    ap.add_argument("--zoo", type=Path, required=True)
    ap.add_argument("--rep", type=Path, help="representation directories' prefix (default ZOO_rep: "
                                             "ZOO_rep_e200, ...)")
    ap.add_argument("--no-build", action="store_true", help="use ZOO as it is (no 'eoreps zoo build' call)")
    ap.add_argument("--fit-epochs", default="200,1000", help="one representation per value")
    ap.add_argument("--fit-batch-size", type=int, default=8)
    add_window_model_args(ap)  # --d-model --layers --latent-dim --window --token-width --threads
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import torch

    from eoreps.hyper.oof import oof_scores
    from eoreps.hyper.probing_features import zoo_baseline_scores
    from eoreps.precision import cpu_model
    from eoreps.zoo.modelzoo import ModelZoo

    torch.set_num_threads(args.threads)
    spec = args.spec
    if spec is None:
        spec = args.zoo.with_name(args.zoo.name + ".spec.yaml")
        spec.write_text(DEFAULT_SPEC)
    rep_prefix = args.rep or args.zoo.with_name(args.zoo.name + "_rep")
    fits = {f"e{e}": Path(f"{rep_prefix}_e{e}") for e in args.fit_epochs.split(",")}
    timings: dict[str, float] = {}
    if not args.no_build:
        timings["build_call_s"] = round(_eoreps("zoo", "build", "--from-pretraining", str(spec), "--out",
                                                str(args.zoo), "--threads", str(args.threads)), 1)
    for tag, rep_dir in fits.items():
        if (rep_dir / "hyper.json").is_file():
            continue
        timings[f"hyper_fit_{tag}_s"] = round(_eoreps(
            "hyper", "fit", "--tokenizer", "window", "--zoo", str(args.zoo), "--out", str(rep_dir),
            "--epochs", tag[1:], "--batch-size", str(args.fit_batch_size), "--d-model",
            str(args.d_model), "--layers", str(args.layers), "--latent-dim", str(args.latent_dim),
            "--window", str(args.window), "--token-width", str(args.token_width), "--precision", "fp32",
            "--threads", str(args.threads)), 1)
    zoo = ModelZoo(args.zoo)
    props = zoo.properties.reset_index(drop=True)
    t = time.perf_counter()
    extra = {k: v for tag, d in fits.items() for k, v in learned_features(zoo, d, tag).items()}
    timings["embed_s"] = round(time.perf_counter() - t, 2)
    recipes = {"recipe: method, fraction (reference)": ["method", "data_fraction"],
               "recipe: method, seed, fraction (reference)": ["method", "seed", "data_fraction"]}
    rows = []
    for cv, group_by in ((f"{args.repeats} x {args.folds}-fold", None), ("leave-one-seed-out", "seed")):
        for target in TARGETS:
            t = time.perf_counter()
            groups = None if group_by is None else props[group_by].to_numpy()
            scores = zoo_baseline_scores(zoo, target, folds=args.folds, repeats=args.repeats, extra=extra,
                                         group_by=group_by)
            scores.update(oof_scores({k: recipe_features(props, c) for k, c in recipes.items()},
                                     props[target].to_numpy(), args.folds, args.repeats, groups=groups))
            timings[f"scores_{target}_{group_by or 'kfold'}_s"] = round(time.perf_counter() - t, 2)
            for name, s in scores.items():
                rounded = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in s.items()}
                rows.append({"cv": cv, "target": target, "features": name, **rounded})
                r = rows[-1]
                print(f"{cv:18s} {target:13s} {name:44s} R2 {r['r2']:+.3f} +- {r['r2_std']:.3f}  "
                      f"tau {r['kendall_tau']:+.3f} +- {r['kendall_tau_std']:.3f}", flush=True)
    hyper = {tag: json.loads((d / "hyper.json").read_text()) for tag, d in fits.items()}
    out = {
        "command": "python " + " ".join(sys.argv),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "torch_threads": args.threads,
        "data": "SimEO (synthetic)",
        "spec": spec.read_text(),
        "zoo": str(args.zoo),
        "n_backbones": int(len(props)),
        "num_params": int(zoo.num_params),
        "representations": {tag: {"dir": str(fits[tag]), "epochs": int(tag[1:]),
                                  "trained_on": "weights of hyper fit's training split, no labels",
                                  "seconds": h.get("seconds"), "model": h.get("model"),
                                  "window": h.get("window"), "final_metrics": h.get("final_metrics")}
                            for tag, h in hyper.items()},
        "evaluation": f"out-of-fold ridge, {args.repeats} x {args.folds}-fold (mean +- std over repeats) "
                      f"and leave-one-seed-out; alpha by leave-one-out inside the training folds",
        "timings": timings,
        "probe_accuracy": accuracy_summary(props),
        "members": props[["model_id", "method", "seed", "data_fraction", *TARGETS]].to_dict("records"),
        "rows": rows,
    }
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=float) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
