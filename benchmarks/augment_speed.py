"""Augmentation speed: eoreps' hand-written batched torch transforms vs kornia, same batch, same run.

Batch: S2 (B, 12, 32, 32) + S1 (B, 2, 32, 32) float32 + mask (B, 32, 32) int64, B = 256, CPU.
Prints the median wall and CPU time per batch of each variant and its ratio to the eoreps pipeline.

    python benchmarks/augment_speed.py [--batch 256] [--size 32] [--repeats 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch


def _median_ms(fn: Callable[[], object], repeats: int, warmup: int = 2) -> tuple[float, float]:
    """Median wall time and median process CPU time per call, in ms.

    CPU time is reported too because the benchmark machine is often shared: it is much less
    affected by other processes than wall time (with one thread it approximates the unloaded
    wall time).
    """
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return 1000 * statistics.median(wall), 1000 * statistics.median(cpu)


def _d4_grouped(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Alternative D4: one index_select + flip/rot90 per group element (8 groups)."""
    out = torch.empty_like(x)
    for e in range(8):
        sel = torch.nonzero(g == e).flatten()
        if len(sel):
            y = x.index_select(0, sel)
            if e >= 4:
                y = y.flip(-1)
            out[sel] = torch.rot90(y, e % 4, dims=(-2, -1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    import kornia
    import kornia.augmentation as K

    from eoreps.transforms import (
        BandGainOffset,
        Compose,
        RandomFlipRotate,
        RandomResizedCrop,
        TwoViews,
        apply_d4,
    )

    g = torch.Generator().manual_seed(0)
    b, s = a.batch, a.size
    batch = {"s2": torch.randn(b, 12, s, s, generator=g), "s1": torch.randn(b, 2, s, s, generator=g),
             "mask": torch.randint(0, 10, (b, s, s), generator=g)}

    d4 = RandomFlipRotate()
    rrc = RandomResizedCrop(s, scale=(0.5, 1.0))
    full = Compose([d4, rrc, BandGainOffset(0.05, 0.05)])
    elems = d4.sample_params(b, g)

    ks = K.AugmentationSequential(
        K.RandomHorizontalFlip(), K.RandomVerticalFlip(), K.RandomRotation90(times=(0, 3), p=1.0),
        data_keys=["input", "input", "mask"])
    kr = K.AugmentationSequential(
        K.RandomResizedCrop((s, s), scale=(0.5, 1.0)), data_keys=["input", "input", "mask"]
    )
    kall = K.AugmentationSequential(
        K.RandomHorizontalFlip(), K.RandomVerticalFlip(), K.RandomRotation90(times=(0, 3), p=1.0),
        K.RandomResizedCrop((s, s), scale=(0.5, 1.0)), data_keys=["input", "input", "mask"])
    mask_f = batch["mask"][:, None].float()

    rows = [
        ("eoreps D4 (gather)", lambda: d4(batch, generator=g)),
        ("eoreps D4 grouped rot90 (alt.)", lambda: {k: _d4_grouped(v, elems) for k, v in batch.items()}),
        ("eoreps D4 gather, tensors only", lambda: {k: apply_d4(v, elems) for k, v in batch.items()}),
        ("kornia flips + Rotation90", lambda: ks(batch["s2"], batch["s1"], mask_f)),
        ("eoreps RandomResizedCrop", lambda: rrc(batch, generator=g)),
        ("kornia RandomResizedCrop", lambda: kr(batch["s2"], batch["s1"], mask_f)),
        ("eoreps D4 + RRC + gain/offset", lambda: full(batch, generator=g)),
        ("eoreps TwoViews(D4 + RRC + gain/offset)", lambda: TwoViews(full)(batch, generator=g)),
        ("kornia D4 + RRC", lambda: kall(batch["s2"], batch["s1"], mask_f)),
    ]
    print(f"torch {torch.__version__}, kornia {kornia.__version__}, threads {a.threads}, "
          f"batch {b} x (12 + 2) x {s} x {s} + mask, median of {a.repeats}")
    print(
        f"{'variant':42s} {'wall ms':>9s} {'cpu ms':>9s} {'samples/s (cpu)':>16s} "
        f"{'x eoreps pipeline (cpu)':>24s}"
    )
    res = {name: _median_ms(fn, a.repeats) for name, fn in rows}
    base = res["eoreps D4 + RRC + gain/offset"][1]
    for name, (wall, cpu) in res.items():
        print(f"{name:42s} {wall:9.2f} {cpu:9.2f} {b / cpu * 1000:16.0f} {cpu / base:24.2f}")


if __name__ == "__main__":
    main()
