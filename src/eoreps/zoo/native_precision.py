"""Which native kernel ``precision='auto'`` trains a zoo with: bf16 only where it is measured faster.

The bf16 kernel (:mod:`eoreps.zoo.native`, ``kernels/popnet_bf16.hpp``) needs AVX512-BF16, and even there
it is not always faster: VDPBF16PS does two multiply-adds per member where an FMA does one, but on an
Intel Xeon (Sapphire Rapids class, the machine of ``docs/zoo.md``) it issues at a quarter of the FMA rate
(measured 1.329 vs 5.237 G instructions/s on one core, ``dpbf16_ginstr_s`` and ``fma_ginstr_s`` in
``benchmarks/results/zoo_throughput_2026-12-06_native_bf16.json``), so the bf16 kernel trains at ~0.6x
the fp32 one; on CPUs that issue it like an FMA (AMD Zen 4) it saves up to half of the conv time. So, in
order:

1. ``EOREPS_AUTO_PRECISION=fp32`` decides without measuring (the test suite pins it);
2. a CPU without ``avx512_bf16`` (read from ``/proc/cpuinfo`` through :func:`eoreps.precision.cpu_flags`,
   so tests can replace it) or a bf16 kernel that does not compile gets ``fp32`` with the reason, also
   under ``EOREPS_AUTO_PRECISION=bf16``; otherwise that override gives ``bf16`` without measuring;
3. otherwise both kernels train the same groups (16 x threads lanes: one 16-member group per thread) on
   the same random images for a few interleaved rounds (:func:`time_kernels`, ~0.1-0.5 s; a warm-up
   excluded) and bf16 is picked only when its median is at least :data:`eoreps.precision_probe.MARGIN`
   times faster. Lookup, file lock, timing, the finite-ratio check and the JSON cache in
   ``$EOREPS_CACHE/precision/`` are :func:`eoreps.precision_probe.measured_choice`'s; the key is the
   digest :func:`eoreps.zoo.native.load` caches each kernel under (source, headers, compiler, flags, CPU),
   the thread count and :data:`_VERSION` (also remembered in memory per process).

:func:`choose` returns an :class:`eoreps.precision.Choice` whose reason a zoo records in its manifest
(``kernel``), e.g. ``fp32: bf16 measured 0.580x fp32 for the native cnn_s kernel on this CPU (bf16 needs
>= 1.05x)``.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch

from eoreps.digest import digest
from eoreps.precision import ENV, Choice
from eoreps.precision_probe import Workload, cache_key, measured_choice
from eoreps.zoo import native
from eoreps.zoo.architectures import Arch

if TYPE_CHECKING:
    from eoreps.zoo.population import TrainOptions

ROUNDS = 5  # timed rounds per kernel (interleaved), after one warm-up each
IMAGES = 60  # images per member per round (6 steps of batch 10)

Timer = Callable[[Arch, int], tuple[float, float]]
_CHOSEN: dict[str, Choice] = {}


def _group(arch: Arch, precision: str, threads: int) -> Callable[[], None]:
    """One training call of one lane group per thread (Adam, ReLU) on random images, in ``precision``."""
    lanes, d, k = native.LANES * max(1, threads), arch.num_params, arch.num_classes
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(IMAGES, int(np.prod(arch.in_shape)), generator=gen)
    y = torch.randint(0, k, (IMAGES,), generator=gen, dtype=torch.int32)
    ones = torch.ones(lanes)
    ng = native.NativeGroups(native.load(arch, precision), lanes, d, ones * 1e-3, ones * 0, ones.int(),
                             (ones * native.ACT_CODES["relu"]).int(), ones * 0, threads, k)
    w0 = ng.to_lanes(torch.randn(lanes, d, generator=gen) * 0.1)
    orders = np.tile(np.arange(IMAGES, dtype=np.int32), (lanes, 1))
    seeds = np.zeros(lanes, dtype=np.uint32)

    def run() -> None:
        w, m, v = w0.clone(), torch.zeros_like(w0), torch.zeros_like(w0)
        ng.train_epoch(x, y, orders, 10, w, m, v, 0, seeds)

    return run


def time_kernels(arch: Arch, threads: int) -> tuple[float, float]:
    """Median seconds of one group's training call with the fp32 and the bf16 kernel (interleaved rounds,
    alternating which goes first; one warm-up each)."""
    runs = {p: _group(arch, p, threads) for p in native.KERNEL_PRECISIONS}
    times: dict[str, list[float]] = {p: [] for p in runs}
    for p in runs:
        runs[p]()
    for r in range(ROUNDS):
        for p in (native.KERNEL_PRECISIONS if r % 2 == 0 else native.KERNEL_PRECISIONS[::-1]):
            t = time.perf_counter()
            runs[p]()
            times[p].append(time.perf_counter() - t)
    return statistics.median(times["fp32"]), statistics.median(times["bf16"])


_VERSION = 2  # of the verdict's key and of the timing procedure (time_kernels, ROUNDS, IMAGES)


def _workload(arch: Arch, threads: int) -> Workload:
    """The verdict's identity for :func:`eoreps.precision_probe.measured_choice`: no torch modules, only
    what sets the two kernels' speed (the digest :func:`eoreps.zoo.native.load` caches each compiled
    kernel under: source, headers, compiler, flags, CPU), the thread count and this module's version."""
    kernels = {p: native.kernel_key(arch, p) for p in native.KERNEL_PRECISIONS}
    spec = {"zoo_native": _VERSION, "kernels": kernels, "threads": threads, "rounds": ROUNDS,
            "images": IMAGES}
    return Workload(parts=[], label=f"the native {arch.name} kernel", spec=spec)


def _measured(arch: Arch, threads: int, timer: Timer | None) -> Choice:
    """The cached or measured verdict; lookup, lock, timing, ratio check and cache file are
    :func:`eoreps.precision_probe.measured_choice`'s (the one the SSL and fit runs use)."""
    workload = _workload(arch, threads)
    key = digest(cache_key(workload))
    if key not in _CHOSEN:
        _CHOSEN[key] = measured_choice(workload, lambda _w: (timer or time_kernels)(arch, threads))
    return _CHOSEN[key]


def choose(arch: Arch, threads: int, timer: Timer | None = None) -> Choice:
    """The native kernel precision ``auto`` means for ``arch`` at ``threads`` threads on this CPU (rules in
    the module docstring). Assumes the fp32 kernel can run here; ``timer`` replaces :func:`time_kernels`."""
    forced = os.environ.get(ENV, "").strip().lower()
    if forced == "fp32":
        return Choice("fp32", f"fp32: {ENV}=fp32")
    try:  # bf16 on a CPU without the flag, or a compiler without -mavx512bf16: fp32 with the reason
        native.load(arch, "bf16")
    except native.NativeUnavailable as e:
        return Choice("fp32", f"fp32: {ENV}=bf16 but {e}" if forced == "bf16" else f"fp32: {e}")
    if forced == "bf16":
        return Choice("bf16", f"bf16: {ENV}=bf16")
    return _measured(arch, threads, timer)


def kernel_record(options: TrainOptions, arch: Arch, asked: str) -> dict[str, str]:
    """What a zoo's manifest records about the kernel that trains it: engine, precision and why
    (``asked``: the precision before :func:`eoreps.zoo.population.resolve_options` resolved it)."""
    if options.engine != "native":
        auto = asked == "auto" and options.precision == "bf16"  # not a backbone zoo forced to fp32
        why = f"{options.precision}: torch engine" + (" (auto: bf16 autocast)" if auto else "")
    elif asked == "auto":
        why = choose(arch, torch.get_num_threads()).reason  # cached: the choice resolve_options made
    else:
        why = f"{options.precision}: requested"
    return {"engine": options.engine, "precision": options.precision, "reason": why}
