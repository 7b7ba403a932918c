"""Build time of a zoo of registered backbones (``eoreps zoo build --backbone``) and what 100 members take.

Builds ``--members`` members of ``--backbone`` (default ``cnn-small``, BatchNorm: one member at a time per
process) on ``--dataset`` (default SimEO, 12 x 32 x 32) for ``--epochs`` epochs with a checkpoint per
epoch, through the real build path (:func:`eoreps.zoo.build.build_zoo`: store, index, resume), and
reports:

* wall seconds of the build, seconds per member-epoch (training + the per-epoch evaluation of train,
  validation and test), training images/s;
* the same per member-epoch in process CPU seconds per thread (robust to other processes sharing the
  cores);
* the extrapolation to ``--target-members`` members with the same epochs on ``--cores`` cores, one member
  per core at a time (``--backend ray`` or several processes; each at ``--threads`` torch threads),
  and whether it fits in one hour.

Only the build is timed (no hyper-representation). Run on an idle machine, e.g.::

    python benchmarks/zoo_backbones.py --members 4 --epochs 2 --threads 1 --simeo-n 1500
    python benchmarks/zoo_backbones.py --members 100 --epochs 5 --threads 1 --backend ray   # the real build

Output: a table, and JSON with ``--json PATH``.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import torch

from eoreps.zoo.backbones import load_backbone_grid
from eoreps.zoo.build import BuildConfig, build_zoo
from eoreps.zoo.datasets import load_dataset, load_simeo
from eoreps.zoo.population import TrainOptions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="cnn-small")
    ap.add_argument("--dataset", default="simeo", help="simeo, digits or an MNIST-style PATH")
    ap.add_argument("--simeo-n", type=int, default=3000, help="SimEO patches generated (simeo only)")
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--train-fraction", type=float, default=1.0)
    ap.add_argument("--train-eval-max", type=int, default=500, help="training images evaluated per epoch")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the build")
    ap.add_argument("--backend", default="local", choices=["local", "ray"])
    ap.add_argument("--cores", type=int, default=2, help="cores of the extrapolated build")
    ap.add_argument("--target-members", type=int, default=100)
    ap.add_argument("--out", type=Path, default=None, help="zoo folder (default: a temporary one)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    data = load_simeo(n=a.simeo_n) if a.dataset == "simeo" else load_dataset(a.dataset)
    grid = load_backbone_grid(
        {
            "seed": list(range(a.members)),
            "optimizer": ["adam"],
            "lr": [1e-3],
            "weight_decay": [1e-4],
            "augment": ["flip"],
            "train_fraction": [a.train_fraction],
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = a.out or Path(tmp) / "zoo"
        cfg = BuildConfig(
            out=out,
            dataset=a.dataset,
            arch=f"backbone:{a.backbone}",
            grid=grid,
            epochs=a.epochs,
            options=TrainOptions(batch_size=a.batch_size, train_eval_max=a.train_eval_max),
            backend=a.backend,
        )
        t0, c0 = time.perf_counter(), time.process_time()
        summary = build_zoo(cfg, data=data)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    member_epochs = max(1, summary["models_trained"] * a.epochs)
    per = wall / member_epochs  # includes epoch 0's evaluation, spread over the trained epochs
    per_cpu = cpu / a.threads / member_epochs  # robust to other processes sharing the cores
    target = per * a.target_members * a.epochs / max(1, a.cores)
    target_cpu = per_cpu * a.target_members * a.epochs / max(1, a.cores)
    res = {
        "backbone": a.backbone,
        "dataset": data.name,
        "n_train": len(data.y_train),
        "members": a.members,
        "epochs": a.epochs,
        "threads": a.threads,
        "backend": a.backend,
        "wall_s": round(wall, 2),
        "s_per_member_epoch": round(per, 3),
        "cpu_s_per_member_epoch": round(per_cpu, 3),
        "train_images_per_s": round(summary["trained_images"] / wall, 1),
        "target_members": a.target_members,
        "target_cores": a.cores,
        "target_estimate_s": round(target, 1),
        "target_fits_1h": bool(target < 3600),
        "target_estimate_from_cpu_s": round(target_cpu, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    width = max(len(k) for k in res)
    for k, v in res.items():
        print(f"{k:<{width}}  {v}")
    if a.json:
        a.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
