"""Aggregate training throughput of a vectorized zoo population vs one model at a time.

Everything is measured in this one run, side by side:

* baseline: the published 2,464-parameter CNN trained alone (nn.Module + torch.optim.Adam, batch 10,
  float32), one model after the other;
* the vectorized population (``eoreps.zoo.population.PopulationTrainer``): P models, batch 10 each,
  per-model data order (the default) and shared data order, on the native engine (the default where a
  C++ compiler exists: compiled lane-per-member kernel, float32; and its bf16 kernel, VDPBF16PS products
  with float32 accumulation, where the CPU has avx512_bf16) and on the torch engine (grouped
  convolutions, bf16 autocast and float32; ``--skip-torch`` leaves these slow rows out);
* with ``--lanes 16,8``: the native fp32 kernel compiled for lane groups of each width (the script sets
  ``eoreps.zoo.native.LANES`` per row; the default is one SIMD register of the CPU,
  :func:`eoreps.zoo.native.native_lanes`, or ``EOREPS_ZOO_LANES``);
* the machine's FLOP limit: the best of a 2048^3 float32 and bfloat16 matmul (bf16 only on a CPU with native
  bf16, ``avx512_bf16`` or ``amx_bf16``: elsewhere torch emulates it at a small fraction of fp32, which is no
  limit, and the ``%bf16`` column reads ``-``);
* peak resident memory of the process (``ru_maxrss``).

Images/s are reported on wall-clock time and on the process's CPU time divided by the thread count
("per-thread-second" figures are robust to other processes sharing the cores); each figure is the median
of ``--repeats`` timed runs after one warm-up. Run::

    python benchmarks/zoo_throughput.py --threads 2 --models 256 --steps 30

Output: a table, and JSON with ``--json PATH``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time

import torch
import torch.nn.functional as F

from eoreps.errors import ConfigError
from eoreps.precision import BF16_CPU_FLAGS, cpu_summary
from eoreps.zoo import native
from eoreps.zoo.architectures import build_model, make_arch
from eoreps.zoo.datasets import ZooData
from eoreps.zoo.grid import Member
from eoreps.zoo.memory import retain_freed_memory
from eoreps.zoo.native_precision import kernel_record
from eoreps.zoo.population import PopulationTrainer, TrainOptions


def flops_per_image(arch) -> float:
    """Training FLOPs per image: forward 2*MACs, backward 2x forward minus the first layer's input grad."""
    c, h, w = arch.in_shape
    fwd, first = 0.0, None
    for op in arch.ops:
        if op.kind == "conv":
            h, w = h - op.k + 1, w - op.k + 1
            f = 2.0 * op.cout * h * w * op.cin * op.k * op.k
            first = f if first is None else first
            fwd += f
        elif op.kind == "pool":
            h, w = h // op.k, w // op.k
        elif op.kind == "linear":
            f = 2.0 * op.cin * op.cout
            first = f if first is None else first
            fwd += f
    return 3.0 * fwd - (first or 0.0)


def timed(fn, threads: int, repeats: int) -> tuple[float, float]:
    """Median (wall seconds, CPU seconds / threads) of ``repeats`` calls of fn()."""
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append((time.process_time() - c) / threads)
    return statistics.median(walls), statistics.median(cpus)


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 3) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = 1e9
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2.0 * n ** 3 / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", type=int, default=256, help="population size P")
    ap.add_argument(
        "--steps", type=int, default=30, help="training steps (batch 10 per model) per measurement"
    )
    ap.add_argument(
        "--baseline-models", type=int, default=4, help="models trained one at a time for the baseline"
    )
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per figure (the median is reported)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--skip-torch", action="store_true", help="leave out the torch-engine population rows")
    ap.add_argument("--lanes", default="", help="comma-separated lane-group widths (4, 8, 16) to time the "
                    "native fp32 kernel at, each its own row (default: none beyond the CPU's own width)")
    ap.add_argument("--quick", action="store_true", help="seconds: 16 models, 3 steps, 1 repeat (smoke run)")
    ap.add_argument("--no-malloc-tuning", action="store_true",
                    help="leave glibc's allocator alone (see eoreps.zoo.memory); applies to both sides")
    args = ap.parse_args()
    if args.quick:
        args.models, args.steps, args.repeats, args.baseline_models = 16, 3, 1, 1
    torch.set_num_threads(args.threads)
    machine = cpu_summary()
    flags = ", ".join(machine["flags"]) or "-"
    print(f"CPU: {machine['cpu']}; flags {flags}; precision auto -> {machine['reason']}")
    # the population trainer keeps freed memory in the heap; do the same for the baseline so that both
    # sides run under one allocator policy
    if args.no_malloc_tuning:
        os.environ["EOREPS_MALLOC_TUNING"] = "0"
    malloc_tuned = retain_freed_memory()
    arch = make_arch("cnn_s", (1, 28, 28), 10)
    g = torch.Generator().manual_seed(0)
    n = args.steps * 10
    x = torch.randn(n, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    data = ZooData("bench", x, y, x[:10], y[:10], x[:10], y[:10], 10)
    results: dict[str, dict[str, float]] = {}
    auto_kernel = None

    # (a) one model at a time, batch 10, Adam, float32 (the original way)
    def alone() -> None:
        for s in range(args.baseline_models):
            net = build_model(arch, "relu", "kaiming_uniform", s)
            opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(s))
            for i in range(0, n, 10):
                idx = perm[i:i + 10]
                opt.zero_grad()
                F.cross_entropy(net(x[idx]), y[idx]).backward()
                opt.step()

    alone()  # warm-up
    wall, cpu = timed(alone, args.threads, args.repeats)
    imgs = args.baseline_models * n
    results["one_at_a_time"] = {"img_s": imgs / wall, "img_s_cpu": imgs / cpu}

    members = [
        Member(
            i, i, "relu", "kaiming_uniform", "adam", [1e-3, 1e-4][i % 2], [1e-3, 1e-4][(i // 2) % 2], 0.0, 1.0
        )
        for i in range(args.models)
    ]
    runs = [
        ("default_auto", "auto", "auto", "per_model"),  # what `eoreps zoo build` does without options
        ("native_per_model", "native", "fp32", "per_model"),
        ("native_shared", "native", "fp32", "shared"),
        ("native_bf16_per_model", "native", "bf16", "per_model"),
        ("torch_bf16_per_model", "torch", "bf16", "per_model"),
        ("torch_bf16_shared", "torch", "bf16", "shared"),
        ("torch_fp32_per_model", "torch", "fp32", "per_model"),
    ]
    tokens = [w.strip() for w in args.lanes.split(",") if w.strip()]
    if any(t not in ("4", "8", "16") for t in tokens):
        raise SystemExit(f"--lanes {args.lanes}: lane groups are 4, 8 or 16 members wide")
    widths = [int(t) for t in tokens]
    runs += [(f"native_per_model_lanes{w}", "native", "fp32", "per_model", w) for w in widths]
    default_lanes = native.LANES
    try:
        for name, engine, prec, order, *lanes in runs:
            if args.skip_torch and engine == "torch":
                continue
            native.LANES = lanes[0] if lanes else default_lanes  # the kernel is compiled for this width
            opts = TrainOptions(precision=prec, data_order=order, engine=engine)
            try:
                pop = PopulationTrainer(arch, members, data, opts)
                if engine == "auto":
                    why = kernel_record(pop.opt, arch, "auto")["reason"]
                    print(f"default (auto) resolved to engine={pop.opt.engine}, "
                          f"precision={pop.opt.precision} ({why})")
                    auto_kernel = why
            except ConfigError as e:  # no C++ compiler: the native rows are skipped, with the reason
                print(f"skipped {name}: {e}")
                continue
            pop.train_epoch()  # warm-up (one pass over the steps)
            wall, cpu = timed(pop.train_epoch, args.threads, args.repeats)
            imgs = args.models * n
            results[name] = {"img_s": imgs / wall, "img_s_cpu": imgs / cpu}
    finally:
        native.LANES = default_lanes  # put back whatever a row raised

    base = results["one_at_a_time"]
    native_bf16 = bool(set(BF16_CPU_FLAGS) & set(machine["flags"]))
    peak32 = matmul_peak(torch.float32)
    peak16 = matmul_peak(torch.bfloat16) if native_bf16 else None
    fpi = flops_per_image(arch)
    for r in results.values():
        r["speedup"] = r["img_s"] / base["img_s"]
        r["speedup_cpu"] = r["img_s_cpu"] / base["img_s_cpu"]
        r["frac_fp32_peak"] = r["img_s"] * fpi / peak32
        r["frac_bf16_peak"] = r["img_s"] * fpi / peak16 if peak16 else None
    out = {
        "threads": args.threads,
        "repeats": args.repeats,
        "quick": args.quick,
        "cpu": machine,
        "malloc_tuned": malloc_tuned,
        "models": args.models,
        "steps": args.steps,
        "flops_per_image": fpi,
        "matmul_fp32_gflops": peak32 / 1e9,
        "matmul_bf16_gflops": peak16 / 1e9 if peak16 else None,
        "lanes": default_lanes,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "auto_kernel": auto_kernel,
        "results": results,
    }
    print(f"cnn_s (2,464 params), batch 10 per model, {args.threads} threads, P={args.models}; "
          f"{fpi / 1e6:.2f} MFLOP per training image; glibc heap reuse {'on' if malloc_tuned else 'off'}")
    bf16_limit = f"{peak16 / 1e9:.0f} GFLOP/s" if peak16 else "- (no native bf16 on this CPU)"
    print(f"FLOP limit (2048^3 matmul): fp32 {peak32 / 1e9:.0f} GFLOP/s, bf16 {bf16_limit}; native kernel "
          f"lane groups of {default_lanes}")
    print(
        f"{'run':28s} {'img/s':>9s} {'x base':>7s} {'img/cpu-s':>10s} {'x base':>7s} {'%fp32':>6s} "
        f"{'%bf16':>6s}"
    )
    for k, r in results.items():
        pct16 = f"{100 * r['frac_bf16_peak']:6.2f}" if r["frac_bf16_peak"] is not None else f"{'-':>6s}"
        print(f"{k:28s} {r['img_s']:9.0f} {r['speedup']:7.2f} {r['img_s_cpu']:10.0f} {r['speedup_cpu']:7.2f} "
              f"{100 * r['frac_fp32_peak']:6.2f} {pct16}")
    print(f"peak RSS {out['peak_rss_mb']:.0f} MB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
