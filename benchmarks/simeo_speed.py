"""SimEO generation speed: 10,000 patches of all modalities against the 30 s budget on 2 cores.

Times ``generate_patches(n)`` (S2, S1, DEM, land cover, weather, season, NO2 and every target) and
prints the median of ``--repeats`` runs, the throughput and the ratio to the budget (< 1 = within).
A second line times the same run on one thread, so the parallel speed-up is measured in the same run.

    python benchmarks/simeo_speed.py [--n 10000] [--repeats 3] [--threads 2] [--budget 30]

SimEO is synthetic; this measures the generator, not any method. Timings depend on what else runs on
the machine: report the load alongside the numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def _time(n: int, repeats: int, threads: int, seed: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU (user + system, all threads) seconds of each run."""
    os.environ["EOREPS_SIMEO_THREADS"] = str(threads)
    from eoreps.data.simeo import generate_patches

    generate_patches(64, seed=seed)  # warm-up: imports, FFT plans, quantile tables
    wall, cpu = [], []
    for r in range(repeats):
        c, t = os.times(), time.perf_counter()
        out = generate_patches(n, seed=seed + r)
        wall.append(time.perf_counter() - t)
        c2 = os.times()
        cpu.append(c2.user - c.user + c2.system - c.system)
        del out
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget", type=float, default=30.0, help="seconds allowed for --n patches")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-single", action="store_true", help="do not time the 1-thread run")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"SimEO (synthetic) speed: n={args.n} patches, all modalities, {args.repeats} runs, "
          f"{os.cpu_count()} CPUs visible, load average {load:.1f} at start")
    t, cpu = _time(args.n, args.repeats, args.threads, args.seed)
    med = statistics.median(t)
    print(
        f"{args.threads} threads: median {med:.1f} s ({args.n / med:.0f} patches/s), runs "
        f"{', '.join(f'{x:.1f}' for x in t)} s; ratio to the {args.budget:.0f} s budget: "
        f"{med / args.budget:.2f}"
    )
    print(f"  CPU time per run (user + system, all threads): median {statistics.median(cpu):.1f} s")
    if not args.skip_single and args.threads > 1:
        t1, cpu1 = _time(args.n, args.repeats, 1, args.seed)
        m1 = statistics.median(t1)
        print(f"1 thread:  median {m1:.1f} s (CPU {statistics.median(cpu1):.1f} s); "
              f"speed-up of {args.threads} threads: {m1 / med:.2f}x")
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
