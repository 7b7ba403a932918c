"""Build time of a zoo of registered backbones (``eoreps zoo build --backbone``) and what 100 members take.

Builds ``--members`` members of ``--backbone`` (default ``cnn-small``, BatchNorm: one member at a time per
process) on ``--dataset`` (default SimEO, 12 x 32 x 32) for ``--epochs`` epochs with a checkpoint per
epoch, through the real build path (:func:`eoreps.zoo.build.build_zoo`: store, index, resume), and
reports:

* wall seconds of the build, seconds per member-epoch (training + the per-epoch evaluation of train,
  validation and test), training images/s;
* the same per member-epoch in CPU seconds per thread of the processes that trained (the Ray workers' tasks
  with ``--backend ray``, else this process; the driver's own CPU is reported apart): robust to other
  processes sharing the cores;
* the extrapolation to ``--target-members`` members with the same epochs on ``--cores`` cores, one member
  per core at a time, and whether it fits in one hour. ``--backend ray`` starts a local Ray with
  ``--cores`` CPUs, each task (member) at ``--threads`` torch threads, so it trains ``cores / threads``
  members at a time.

``--grid seed`` (default) varies only the seed (Adam, lr 1e-3, weight decay 1e-4, flips,
``--train-fraction``);
``--grid varied`` draws ``--members`` points at random from seed x optimizer x lr x weight decay x
augmentation x train fraction (:func:`varied_grid`), so the members' test accuracies differ.

Only the build is timed (no hyper-representation). Run on an idle machine, e.g.::

    python benchmarks/zoo_backbones.py --members 4 --epochs 2 --threads 1 --simeo-n 1500
    python benchmarks/zoo_backbones.py --members 100 --epochs 5 --threads 1 --backend ray --cores 2 \
        --grid varied --out ZOO   # the real build (resumes in ZOO)

Output: a table, and JSON with ``--json PATH``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from eoreps.precision import cpu_model
from eoreps.zoo.backbones import BackboneGrid, load_backbone_grid
from eoreps.zoo.build import BuildConfig, build_zoo
from eoreps.zoo.datasets import load_dataset, load_simeo
from eoreps.zoo.population import TrainOptions


def seed_grid(members: int, train_fraction: float = 1.0, first_seed: int = 0) -> BackboneGrid:
    """``members`` seeds (from ``first_seed``) of one recipe (Adam, lr 1e-3, weight decay 1e-4, flips)."""
    return load_backbone_grid({"seed": list(range(first_seed, first_seed + members)), "optimizer": ["adam"],
                               "lr": [1e-3],
                               "weight_decay": [1e-4], "augment": ["flip"],
                               "train_fraction": [train_fraction]})


def varied_grid(members: int, first_seed: int = 0) -> BackboneGrid:
    """``members`` points drawn at random (seeded) from the product of the factors issue 23 lists: seed
    (``first_seed`` on), optimizer, learning rate, weight decay, augmentation and label (train) fraction. The
    draw picks the same factor pattern for any ``first_seed``: a shifted zoo replicates the design with other
    initialisations and data orders."""
    return load_backbone_grid({"seed": list(range(first_seed, first_seed + members)),
                               "optimizer": ["sgd", "adam"],
                               "lr": [1e-3, 3e-3, 1e-2], "weight_decay": [0.0, 1e-4, 1e-3],
                               "augment": ["none", "flip"], "train_fraction": [0.25, 0.5, 1.0],
                               "sampling": "random", "n_models": members})


def final_accuracy_spread(zoo: Path, epoch: int) -> dict[str, float]:
    """Min, median, max and standard deviation of the members' test accuracy at ``epoch``."""
    from eoreps.zoo.modelzoo import ModelZoo

    acc = ModelZoo(zoo, epochs=[epoch]).properties["test_acc"].to_numpy(float)
    return {"min": round(float(acc.min()), 4), "median": round(float(np.median(acc)), 4),
            "max": round(float(acc.max()), 4), "std": round(float(acc.std()), 4)}


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
    ap.add_argument("--threads", type=int, default=1, help="torch threads per member (per Ray task)")
    ap.add_argument("--backend", default="local", choices=["local", "ray"])
    ap.add_argument("--cores", type=int, default=2,
                    help="cores of the local Ray (--backend ray) and of the extrapolated build")
    ap.add_argument("--grid", default="seed", choices=["seed", "varied"], help="what the members vary")
    ap.add_argument("--first-seed", type=int, default=0,
                    help="members' seeds start here (a replicate zoo of the same design: e.g. 1000)")
    ap.add_argument("--target-members", type=int, default=100)
    ap.add_argument("--out", type=Path, default=None, help="zoo folder (default: a temporary one)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    data = load_simeo(n=a.simeo_n) if a.dataset == "simeo" else load_dataset(a.dataset)
    grid = (varied_grid(a.members, a.first_seed) if a.grid == "varied"
            else seed_grid(a.members, a.train_fraction, a.first_seed))
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
            ray_cpus=a.cores,
            ray_threads=a.threads,
        )
        t0, c0 = time.perf_counter(), time.process_time()
        summary = build_zoo(cfg, data=data)
        wall, driver_cpu = time.perf_counter() - t0, time.process_time() - c0
        spread = final_accuracy_spread(out, a.epochs)
    member_epochs = max(1, summary["models_trained"] * a.epochs)
    # wall per member-epoch of one core: the build ran min(cores, members) / threads members at a time
    parallel = max(1, min(a.cores // a.threads, summary["models_trained"])) if a.backend == "ray" else 1
    per = wall * parallel / member_epochs  # includes epoch 0's evaluation, spread over the trained epochs
    # CPU of the training processes (Ray workers or this process): robust to other processes on the cores.
    # process_time already sums a process's threads, so this is CPU-seconds, not per-thread seconds.
    per_cpu = summary["train_cpu_s"] / member_epochs
    target = per * a.target_members * a.epochs / max(1, a.cores)
    target_cpu = per_cpu * a.target_members * a.epochs / max(1, a.cores)
    res = {
        "command": "python " + " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu_model(),
        "backbone": a.backbone,
        "dataset": data.name,
        "n_train": len(data.y_train),
        "members": a.members,
        "epochs": a.epochs,
        "threads": a.threads,
        "backend": a.backend,
        "grid": a.grid,
        "members_trained": summary["models_trained"],
        "members_at_a_time": parallel,
        "wall_s": round(wall, 2),
        "s_per_member_epoch": round(per, 3),
        "train_cpu_s": summary["train_cpu_s"],
        "driver_cpu_s": round(driver_cpu, 2),
        "cpu_s_per_member_epoch": round(per_cpu, 3),
        "train_images_per_s": round(summary["trained_images"] / wall, 1),
        "target_members": a.target_members,
        "target_cores": a.cores,
        "target_estimate_s": round(target, 1),
        "target_fits_1h": bool(target < 3600),
        "target_estimate_from_cpu_s": round(target_cpu, 1),
        "final_test_acc": spread,
        "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    width = max(len(k) for k in res)
    for k, v in res.items():
        print(f"{k:<{width}}  {v}")
    if a.json:
        a.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
