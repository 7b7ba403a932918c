"""Do the pretext tasks teach anything on SimEO? Linear probe of each pretrained backbone vs random init.

For every method (default: rotation, jigsaw, band-prediction, inpainting) this pretrains a backbone on
the training split of a cached SimEO folder (synthetic) with ``eoreps.ssl.pretrain.run_pretrain``
(skipped when the export exists), then runs one label-efficiency study (``linear`` protocol: frozen
features + logistic regression with ``C`` picked on the validation split) over the pretrained backbones
and a random initialisation of the same architecture, and prints test overall accuracy (mean over
seeds) with the margin over random init. Usage::

    python benchmarks/pretext_probe.py --epochs 14 --out benchmarks/results/pretext_probe
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="rotation,jigsaw,band-prediction,inpainting")
    p.add_argument(
        "--simeo-n", type=int, default=2000, help="SimEO patches (same folder as the study's default)"
    )
    p.add_argument("--modalities", default="s2")
    p.add_argument("--backbone", default="cnn-small")
    p.add_argument("--epochs", type=int, default=14)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--fractions", default="0.1,1.0")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results/pretext_probe")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from eoreps.data.simeo.io import cached_simeo
    from eoreps.evaluation.encoders import MethodSpec
    from eoreps.evaluation.study import DataConfig, StudyConfig, collect, run_study
    from eoreps.io import read_json, write_json
    from eoreps.ssl.pretrain import PretrainConfig, run_pretrain

    out = Path(args.out)
    mods = [m for m in args.modalities.split(",") if m]
    folder = str(cached_simeo(args.simeo_n, seed=0))
    pretrain: dict[str, dict] = {}
    specs = []
    for name in [m for m in args.methods.split(",") if m]:
        run = out / "pretrain" / name
        if not (run / "pretrain.json").is_file():
            c0 = time.process_time()
            run_pretrain(PretrainConfig(method=name, data=folder, modalities=mods, backbone=args.backbone,
                                        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, knn=False,
                                        accelerator="cpu", out=str(run), seed=0))
            write_json(run / "cpu_time.json", {"cpu_s": time.process_time() - c0})
        summary = read_json(run / "pretrain.json")
        cpu = read_json(run / "cpu_time.json")["cpu_s"] if (run / "cpu_time.json").is_file() else float("nan")
        pretrain[name] = {"steps": summary["steps"], "wall_s": summary["wall_time_s"], "cpu_s": cpu,
                          "metrics": {k: v for k, v in summary["metrics"].items() if k.startswith("train/")}}
        specs.append(MethodSpec(name, backbone=str(run)))
    specs.append(
        MethodSpec("random-init", backbone="random", arch=args.backbone, modalities=mods, fusion="early")
    )
    fractions = [float(f) for f in args.fractions.split(",")]
    cfg = StudyConfig(name="Pretext tasks on SimEO (synthetic): linear probe vs random init",
                      data=DataConfig(data=folder, task="classify", modalities=mods, simeo_n=args.simeo_n),
                      methods=specs, protocols=["linear"], fractions=fractions, seeds=args.seeds)
    run_study(cfg, out / "study")
    df = collect(out / "study")
    table = df.groupby(["method", "fraction"])["oa"].agg(["mean", "std", "count"]).reset_index()
    base = {
        f: float(table[(table.method == "random-init") & (table.fraction == f)]["mean"].iloc[0])
        for f in fractions
    }
    print(f"SimEO (synthetic) {folder}, modalities {mods}, backbone {args.backbone}, linear probe, test OA "
          f"(mean ± std over {args.seeds} seeds)")
    rows = []
    for _, r in table.iterrows():
        margin = r["mean"] - base[r["fraction"]]
        rows.append({"method": r["method"], "fraction": float(r["fraction"]), "oa_mean": float(r["mean"]),
                     "oa_std": float(r["std"]), "margin_vs_random": float(margin)})
        print(
            f"{r['method']:<16} f={r['fraction']:<5g} OA {r['mean']:.3f} ± {r['std']:.3f}  vs random "
            f"{margin:+.3f}"
        )
    for name, s in pretrain.items():
        print(f"{name:<16} pretraining {s['steps']} steps, {s['wall_s']:.0f} s wall, {s['cpu_s']:.0f} s CPU, "
              + ", ".join(f"{k} {v:.3f}" for k, v in s["metrics"].items()))
    write_json(
        out / "summary.json",
        {
            "data": folder,
            "modalities": mods,
            "backbone": args.backbone,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "pretrain": pretrain,
            "probe": rows,
        },
    )
    print(json.dumps({"summary": str(out / "summary.json")}))


if __name__ == "__main__":
    main()
