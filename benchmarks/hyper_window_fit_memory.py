"""Peak RSS of ``hyper fit --tokenizer window`` on zoos of two model sizes: whole weights in memory vs
windows streamed from the shards (issue 23: "fitting on a zoo of ResNet-18-sized models holds RSS flat in
the number of parameters per model").

Builds (or resumes, in ``--work``) two small SimEO zoos of ResNet-18-shaped backbones through the real build
path: a narrow one (``cnn-base`` with ResNet-18 depths 2,2,2,2 and widths 16..128, 0.7 M parameters) and
``timm:resnet18`` (11.2 M), ``--members`` members x epochs 0..``--epochs`` each. Then fits the windowed
representation for ``--steps`` steps on each zoo with ``--window-data memory`` (the zoo's training weights
(N, D) in RAM, batches of whole flat weights) and ``--window-data stream`` (each batch reads only the tensors
its window touches from the shards, :mod:`eoreps.hyper.window_stream`), every fit in a fresh child process,
and records the child's peak RSS (``VmHWM`` of /proc/self/status and ``ru_maxrss``), ``--repeats`` times.
Prints the ratios of the medians (stream large / stream small: the target is <= 1.15; stream large /
memory large) and writes JSON; with ``--json`` the runs already there are kept (a killed run resumes).

    python benchmarks/hyper_window_fit_memory.py --work /tmp/hwm --json OUT.json    # build + measure
    python benchmarks/hyper_window_fit_memory.py --work /tmp/hwm --build-only        # resumable build slice
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# the two sizes: (label, backbone, backbone kwargs)
SIZES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("narrow", "cnn-base", {"widths": [16, 32, 64, 128], "depths": [2, 2, 2, 2]}),
    ("resnet18", "timm:resnet18", {}),
)
PATHS = ("memory", "stream")
FLAT_LIMIT = 1.15  # stream's peak RSS at the larger size over the smaller one


def peak_rss_kib() -> dict[str, int]:
    """This process's peak RSS in KiB: ``VmHWM`` of /proc/self/status and ``ru_maxrss`` (Linux: KiB)."""
    hwm = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return {"vmhwm_kib": hwm, "ru_maxrss_kib": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)}


def build(work: Path, members: int, epochs: int, simeo_n: int) -> dict[str, Path]:
    """Build (or resume) the two zoos under ``work``; their folders by size label."""
    from eoreps.zoo.backbones import load_backbone_grid
    from eoreps.zoo.build import BuildConfig, build_zoo
    from eoreps.zoo.datasets import load_simeo
    from eoreps.zoo.population import TrainOptions

    data = load_simeo(n=simeo_n)
    grid = {"seed": list(range(members)), "optimizer": ["adam"], "lr": [1e-3], "weight_decay": [1e-4],
            "augment": ["flip"], "train_fraction": [1.0]}
    out = {}
    for label, backbone, kwargs in SIZES:
        out[label] = work / label
        build_zoo(BuildConfig(out=out[label], dataset="simeo", arch=f"backbone:{backbone}", epochs=epochs,
                              grid=load_backbone_grid(grid), backbone_kwargs=dict(kwargs),
                              options=TrainOptions(batch_size=32, train_eval_max=200)), data=data)
    return out


def child(zoo: Path, path: str, steps: int, batch_size: int, window: int) -> dict[str, Any]:
    """Fit ``steps`` steps on ``zoo`` with ``--window-data path`` in this process; its peak RSS."""
    import torch

    from eoreps.hyper.autoencoder import ModelConfig
    from eoreps.hyper.train import FitConfig, fit
    from eoreps.zoo.modelzoo import ModelZoo

    torch.set_num_threads(2)
    zoo_info = ModelZoo(zoo)
    n, d = len(zoo_info), zoo_info.num_params
    del zoo_info
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = fit(FitConfig(zoo=zoo, out=Path(tmp) / "rep", epochs=1000, max_steps=steps,
                            batch_size=batch_size, tokenizer="window", window=window, token_width=64,
                            precision="bf16", window_data=path, model=ModelConfig()))
        seconds = time.perf_counter() - t0
    return {"zoo": str(zoo), "path": path, "checkpoints": n, "params": d, "steps": res["steps"],
            "seconds": round(seconds, 1), **peak_rss_kib()}


def measure(zoos: dict[str, Path], steps: int, batch_size: int, window: int, repeats: int,
            rows: list[dict[str, Any]], save: Any) -> list[dict[str, Any]]:
    """Every (size, path) fit ``repeats`` times, each in a fresh child process (its own peak RSS); the runs
    already in ``rows`` are kept (a killed measurement resumes), ``save(rows)`` after each."""
    for rep, (label, zoo), path in ((r, z, p) for r in range(repeats) for z in zoos.items() for p in PATHS):
        if any(r["size"] == label and r["path"] == path and r["repeat"] == rep for r in rows):
            continue
        cmd = [sys.executable, __file__, "--child", str(zoo), "--path", path, "--steps", str(steps),
               "--batch-size", str(batch_size), "--window", str(window)]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append({"size": label, "repeat": rep, **row})
        save(rows)
        print(f"{label:9s} {path:7s} D={row['params']:>11,} N={row['checkpoints']:3d}  "
              f"VmHWM {row['vmhwm_kib'] / 1024:7.0f} MiB  "
              f"ru_maxrss {row['ru_maxrss_kib'] / 1024:7.0f} MiB  "
              f"({row['seconds']} s)", flush=True)
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Ratios of the median peak RSS (VmHWM) over the repeats: stream at the larger size over the smaller
    one (target <= FLAT_LIMIT), and stream over memory at the larger size; the medians in MiB."""
    runs: dict[tuple[str, str], list[int]] = {}
    for r in rows:
        runs.setdefault((r["size"], r["path"]), []).append(r["vmhwm_kib"])
    peak = {key: float(statistics.median(v)) for key, v in runs.items()}
    small, large = SIZES[0][0], SIZES[-1][0]
    flat = peak[(large, "stream")] / peak[(small, "stream")]
    return {"stream_large_over_small": round(flat, 3),
            "memory_large_over_small": round(peak[(large, "memory")] / peak[(small, "memory")], 3),
            "stream_over_memory_large": round(peak[(large, "stream")] / peak[(large, "memory")], 3),
            "flat_within_15pct": bool(flat <= FLAT_LIMIT),
            "median_vmhwm_mib": {f"{size} {path}": round(v / 1024) for (size, path), v in peak.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("hyper_window_fit_memory_work"))
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=3, help="checkpoints per member: epochs 0..E")
    ap.add_argument("--simeo-n", type=int, default=600)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="fits per (size, path); medians reported")
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--path", default="stream", help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    if a.child is not None:
        print(json.dumps(child(a.child, a.path, a.steps, a.batch_size, a.window)))
        return
    import torch

    torch.set_num_threads(2)
    zoos = build(a.work, a.members, a.epochs, a.simeo_n)
    if a.build_only:
        return
    from eoreps.precision import cpu_model

    def record(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {"command": "python " + " ".join(sys.argv),
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu_model(),
               "members": a.members, "epochs": a.epochs, "simeo_n": a.simeo_n,
               "steps": a.steps, "batch_size": a.batch_size, "window": a.window, "token_width": 64,
               "repeats": a.repeats, "rows": rows}

    def save(rows: list[dict[str, Any]]) -> None:
        if a.json:
            a.json.parent.mkdir(parents=True, exist_ok=True)
            a.json.write_text(json.dumps(record(rows), indent=2) + "\n")

    settings = {k: v for k, v in record([]).items() if k not in ("command", "date", "rows")}
    old = json.loads(a.json.read_text()) if a.json and a.json.is_file() else {}
    kept = old.get("rows", []) if all(old.get(k) == v for k, v in settings.items()) else []
    rows = measure(zoos, a.steps, a.batch_size, a.window, a.repeats, kept, save)
    summary = summarise(rows)
    print(json.dumps(summary))
    if a.json:
        a.json.write_text(json.dumps({**record(rows), **summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
