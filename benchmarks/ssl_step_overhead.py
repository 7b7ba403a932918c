"""Per-step host overhead of eoreps' SimCLR step against the plain loop, in CPU time (issue 25).

The runners are those of ``ssl_throughput.py`` (same data, augmentation, backbone, batch); the clock is the
process's CPU time (``time.process_time``) with one thread, so other processes on the cores disturb it far
less than wall time, and a tiny backbone makes the fixed per-step costs (Lightning hooks, logging,
normalisation, views) a visible share of a step. ``--profile`` adds a cProfile listing (CPU time) of the
eoreps run. Run::

    python benchmarks/ssl_step_overhead.py --backbone cnn-tiny --batch-size 8 --steps 60 --repeats 7
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import ssl_throughput as bench  # noqa: E402 - the runners measured side by side


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="cnn-tiny")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--samples", type=int, default=512)
    p.add_argument("--profile", action="store_true", help="also print the 25 costliest functions of eoreps")
    args = p.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    bench.time.perf_counter = time.process_time  # the runners' clock: this process's CPU time
    from eoreps.ssl.data import load_patches

    data = load_patches("simeo", ["s2"], "train", max_samples=args.samples)
    stats = data.stats()
    ms: dict[str, list[float]] = {"plain": [], "eoreps": []}
    for _ in range(args.repeats):
        ms["plain"].append(1000 * args.batch_size / bench.run_plain(data, args, stats))
        ms["eoreps"].append(1000 * args.batch_size / bench.run_eoreps(data, args, stats, False))
    med = {k: statistics.median(v) for k, v in ms.items()}
    low = {k: min(v) for k, v in ms.items()}
    print(f"{args.backbone}, batch {args.batch_size}, 1 thread, CPU ms per step "
          f"(median / min of {args.repeats})")
    for k in ms:
        print(f"{k:8s} {med[k]:8.2f} / {low[k]:8.2f}")
    print(f"overhead {med['eoreps'] - med['plain']:+8.2f} / {low['eoreps'] - low['plain']:+8.2f} ms per step")
    if args.profile:
        prof = cProfile.Profile(time.process_time)
        prof.enable()
        bench.run_eoreps(data, args, stats, False)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
