"""GPU streaming: pretrain on a packed archive in bf16 on one GPU; images/s and how busy the GPU is.

Issue 22's GPU check: the streamed pack must never starve the GPU (target: >= 80 % busy over the timed
steps). The script

1. writes a reBEN-layout archive of ``--pairs`` pairs with the project's generator and packs it (the same
   steps as ``benchmarks/stream_scale.py``, whose :class:`Bench` it reuses), or takes ``--pack DIR``;
2. pretrains ``--warmup + --steps`` steps on the pack (``eoreps.ssl.pretrain.run_pretrain``, streamed with
   ``--workers`` DataLoader workers, default ``auto``: cores - 1 on a GPU) with ``--accelerator gpu
   --precision bf16``;
3. polls ``nvidia-smi --query-gpu=utilization.gpu`` every ``--interval`` s in a thread and keeps the samples
   taken inside the timed window (after the warm-up). NVML's utilisation is the fraction of time a kernel
   was running over its last sample period, so it over-states how full the GPU is but shows starvation:
   a GPU waiting for the loader reads low.

Prints images/s (pairs/s x 2 views for the multimodal method: ``samples_per_s`` is pairs), the mean and
median utilisation, the share of samples >= 80 %, and PASS/FAIL on the mean; writes ``--json``. Without a
CUDA device it stops with one line (exit 2). Usage on a GPU machine::

    python benchmarks/stream_gpu.py --pairs 4000 --work /tmp/sg --batch-size 256 --steps 200
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark scripts (not a package)
from stream_scale import Bench, _pretrain_config, _timed_callback  # noqa: E402

TARGET_BUSY = 80.0  # percent


def nvidia_smi_utilization(index: int = 0) -> float:
    """The GPU's utilisation (percent) as ``nvidia-smi`` reports it now."""
    out = subprocess.run(["nvidia-smi", "-i", str(index), "--query-gpu=utilization.gpu",
                          "--format=csv,noheader,nounits"], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[0])


class UtilizationSampler:
    """Polls ``query`` every ``interval`` s in a daemon thread; ``samples`` holds (time, percent)."""

    def __init__(self, query: Callable[[], float] = nvidia_smi_utilization, interval: float = 0.2) -> None:
        if interval <= 0:
            raise ValueError(f"interval {interval} must be > 0")
        self.query, self.interval = query, interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), self.query()))
            self._stop.wait(self.interval)

    def __enter__(self) -> UtilizationSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def between(self, t0: float, t1: float) -> list[float]:
        """The percentages sampled in ``[t0, t1]``."""
        return [u for t, u in self.samples if t0 <= t <= t1]


def busy_summary(percent: list[float], target: float = TARGET_BUSY) -> dict[str, Any]:
    """Mean, median, share of samples at or above ``target`` and the verdict (mean >= target)."""
    if not percent:
        raise SystemExit("no utilisation sample fell inside the timed steps: raise --steps or lower "
                         "--interval")
    mean = statistics.fmean(percent)
    return {"samples": len(percent), "mean": round(mean, 1), "median": round(statistics.median(percent), 1),
            "share_at_target": round(sum(p >= target for p in percent) / len(percent), 3),
            "target": target, "pass": mean >= target}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Pack (unless ``--pack``), pretrain on the GPU while sampling utilisation; the result record."""
    import torch

    from eoreps.ssl.pretrain import run_pretrain

    if not torch.cuda.is_available():
        print("stream_gpu: no CUDA device here; run it on a GPU machine (the CPU figures are "
              "benchmarks/stream_scale.py's)", file=sys.stderr)
        raise SystemExit(2)
    bench = Bench(args)
    if args.pack:
        pack = Path(args.pack)
    else:
        pack = Path(bench.pack(bench.archive(args.pairs)[0], args.pairs)["pack"])
    spec = bench.spec(pack, memory=False)
    warmup, steps = spec.pop("warmup"), spec.pop("steps")
    clock: dict[str, float] = {}
    with UtilizationSampler(interval=args.interval) as sampler:
        run_pretrain(_pretrain_config(spec), callbacks=[_timed_callback(warmup, warmup + steps, clock)])
    if "t1" not in clock:
        raise SystemExit(f"pretraining stopped before {warmup + steps} steps")
    record = json.loads((Path(spec["out"]) / "pretrain.json").read_text())
    rate = steps * args.batch_size / (clock["t1"] - clock["t0"])
    return {"command": "python " + " ".join(sys.argv),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "gpu": torch.cuda.get_device_name(0), "pack": str(pack), "method": args.method,
            "backbone": args.backbone, "batch_size": args.batch_size, "precision": record.get("precision"),
            "loader_workers": record["data"].get("loader_workers"), "samples_per_s": round(rate, 1),
            "utilization": busy_summary(sampler.between(clock["t0"], clock["t1"]))}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pack", help="an existing packed folder (default: write and pack --pairs pairs)")
    ap.add_argument("--pairs", type=int, default=4000)
    ap.add_argument("--work", type=Path, default=Path("bench_stream_gpu"))
    ap.add_argument("--method", default="multimodal")
    ap.add_argument("--backbone", default="default")
    ap.add_argument("--crop", default="default")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--workers", default="auto", help="DataLoader workers of the stream")
    ap.add_argument("--pack-workers", type=int, default=8)
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--threads", type=int, default=4, help="torch CPU threads")
    ap.add_argument("--interval", type=float, default=0.2, help="seconds between utilisation samples")
    ap.add_argument("--side", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    a.accelerator = "gpu"
    return a


def main() -> None:
    args = parse()
    res = measure(args)
    u = res["utilization"]
    print(f"{res['gpu']}: {res['samples_per_s']} samples/s ({res['precision']}, "
          f"{res['loader_workers']} loader workers); GPU busy mean {u['mean']} %, median {u['median']} %, "
          f"{u['share_at_target']:.0%} of {u['samples']} samples >= {u['target']:g} %")
    verdict = "PASS" if u["pass"] else "FAIL"
    print(f"{verdict}  the GPU is >= {u['target']:g} % busy on average while streaming")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
