"""SimCLR pretraining throughput on SimEO (synthetic), side by side in one run.

Same backbone, same batch size, same in-memory SimEO S2 patches for every contender:

* ``limit``     -- the backbone's bare forward + backward + AdamW step on a pre-made batch of both views
                   (``2B`` images, no data, no augmentation, no head, no loss): the ceiling; its AdamW is
                   the fastest this PyTorch has (:func:`eoreps.optim.adamw`: fused where it applies), the
                   one eoreps trains with, so the ceiling stays one;
* ``limit-loop`` -- the same with ``torch.optim.AdamW``'s default (the per-tensor loop on CPU), the limit
                   as measured before 2026-12-07;
* ``plain``     -- a plain PyTorch loop: backbone + lightly's ``SimCLRProjectionHead`` and ``NTXentLoss``,
                   batches from a DataLoader, eoreps' batched augmentation, ``torch.optim.AdamW`` as a
                   user writes it (its default implementation);
* ``torchgeo``  -- torchgeo's ``SimCLRTask`` (its own kornia augmentation) through a Lightning Trainer;
* ``eoreps``    -- ``eoreps.ssl`` SimCLR as ``eoreps pretrain`` runs it (Lightning, in-memory
                   batches, normalisation and augmentation in ``on_after_batch_transfer``, gradients
                   clipped at norm 3);
* ``eoreps-stream`` -- eoreps as ``eoreps pretrain --loader stream`` runs it: the same SimEO data set packed
                   once into the pack cache (:func:`eoreps.data.pack_cache.packed_source`, LitData chunks;
                   ``--samples`` of it per epoch, LitData's subsample) and streamed through
                   :class:`eoreps.ssl.data.StreamedPatches` with ``--num-workers auto`` (the packing is not
                   timed);
* ``eoreps-loop`` -- eoreps with ``torch.optim.AdamW``'s default loop instead of the fused kernel (what it
                   ran before 2026-12-07), to measure that change in the same run;
* ``eoreps-bf16`` / ``limit-bf16`` -- the same under bf16 autocast;
* ``eoreps-auto`` -- the default ``--precision auto`` as ``eoreps pretrain`` resolves it: on a CPU with AMX or
                   AVX512-BF16 it times this SimCLR step's encoder in fp32 and bf16 and keeps bf16 only
                   when >= 1.05x faster (:func:`eoreps.precision_probe.settle`, verdict cached in
                   ``$EOREPS_CACHE/precision``), else fp32; what it picked, why, and the seconds the
                   timing took (not counted in the throughput) are printed and stored in the JSON.

The CPU model, its SIMD flags and what ``auto`` picks are printed and stored in the JSON. ``--quick`` is a
smoke run (seconds; tiny backbone, no ratios worth reading).

Throughput is in pairs per second (one pair = one sample seen in two views). Every contender runs
``--repeats`` times, round-robin (the order rotated by one contender each repeat), and the median is reported,
with ratios against the faster anchor (plain, torchgeo) and the limit: the ratio of medians, and the *paired*
ratio (within each repeat, then the median over repeats), which is steadier on a VM whose speed drifts.
Usage::

    python benchmarks/ssl_throughput.py --backbone timm:resnet18 --batch-size 128 --threads 2
    python benchmarks/ssl_throughput.py --backbone timm:vit_tiny_patch16_224 --only
    eoreps,eoreps-bf16,limit,limit-bf16
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

CONTENDERS = ("limit", "limit-loop", "plain", "torchgeo", "eoreps", "eoreps-stream", "eoreps-loop",
              "eoreps-auto", "eoreps-bf16", "limit-bf16")


def _backbone_kwargs(name: str) -> dict[str, Any]:
    return {"img_size": 32, "patch_size": 4} if name.startswith("timm:vit") else {}


class _Timer:
    """Lightning callback: time steps ``warmup .. warmup + steps``."""

    def __init__(self, warmup: int, steps: int) -> None:
        import lightning as L

        outer = self

        class Cb(L.Callback):
            def on_train_batch_start(self, trainer: Any, *a: Any) -> None:
                if trainer.global_step == warmup:
                    outer.t0 = time.perf_counter()

            def on_train_batch_end(self, trainer: Any, *a: Any) -> None:
                if trainer.global_step == warmup + steps:
                    outer.t1 = time.perf_counter()

        self.callback = Cb()
        self.t0 = self.t1 = 0.0


def _trainer(max_steps: int, precision: str, callbacks: list[Any], clip: float | None = None) -> Any:
    """A quiet CPU trainer; ``clip``: gradient clipping by norm (``eoreps pretrain`` clips at 3.0)."""
    import lightning as L

    return L.Trainer(max_steps=max_steps, max_epochs=-1, accelerator="cpu", devices=1, precision=precision,
                     gradient_clip_val=clip,
                     logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, callbacks=callbacks, num_sanity_val_steps=0)


def run_limit(data: Any, args: argparse.Namespace, bf16: bool, fused: bool = True) -> float:
    """Pairs/s of the bare step; ``fused``: :func:`eoreps.optim.adamw`, else ``torch.optim.AdamW``."""
    from eoreps.models import create_backbone
    from eoreps.optim import adamw

    bb = create_backbone(args.backbone, in_chans=data.in_chans["s2"], **_backbone_kwargs(args.backbone))
    opt = adamw(bb.parameters(), lr=1e-3) if fused else torch.optim.AdamW(bb.parameters(), lr=1e-3)
    x = torch.randn(2 * args.batch_size, data.in_chans["s2"], *data.image_size)
    t0 = 0.0
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = bb(x).float().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return args.steps * args.batch_size / (time.perf_counter() - t0)


def run_plain(data: Any, args: argparse.Namespace, stats: Any) -> float:
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead
    from torch.utils.data import DataLoader

    from eoreps.data.stats import Normalizer
    from eoreps.models import create_backbone
    from eoreps.ssl.data import BatchDataset, collate_batch
    from eoreps.ssl.methods.base import eo_augment

    bb = create_backbone(args.backbone, in_chans=data.in_chans["s2"], **_backbone_kwargs(args.backbone))
    d = bb.num_features
    head = SimCLRProjectionHead(d, d, 128)
    crit = NTXentLoss(temperature=0.2)
    opt = torch.optim.AdamW(list(bb.parameters()) + list(head.parameters()), lr=1e-3)
    norm, aug = Normalizer(stats), eo_augment(data.image_size)
    loader = DataLoader(BatchDataset(data), batch_size=args.batch_size, shuffle=True, drop_last=True,
                        collate_fn=collate_batch)
    step, t0 = 0, 0.0
    while step < args.warmup + args.steps:
        for batch in loader:
            if step == args.warmup:
                t0 = time.perf_counter()
            b = norm({"s2": batch["s2"]})
            x1, x2 = aug(b)["s2"], aug(b)["s2"]
            z1, z2 = head(bb(torch.cat([x1, x2]))).chunk(2)
            loss = crit(z1, z2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step == args.warmup + args.steps:
                break
    return args.steps * args.batch_size / (time.perf_counter() - t0)


def _auto(method: Any, args: argparse.Namespace, picks: list[dict[str, Any]]) -> bool:
    """Resolve ``auto`` for ``method`` as ``eoreps pretrain`` does; appends what it picked to ``picks``."""
    from types import SimpleNamespace

    from eoreps.precision import resolve_config
    from eoreps.precision_probe import settle

    cfg = SimpleNamespace(precision="auto")
    cfg.precision = resolve_config(cfg, accelerator="cpu")
    t0 = time.perf_counter()
    record = settle(cfg, lambda: method.precision_workload(args.batch_size), "cpu")
    picks.append({**record, "seconds": round(time.perf_counter() - t0, 2)})
    print(f"eoreps-auto: precision {record['precision']} ({record['reason']}); resolved in "
          f"{picks[-1]['seconds']:.2f} s", flush=True)
    return record["precision"] == "bf16"


def stream_of(data: Any, args: argparse.Namespace) -> Any:
    """The training split of ``--data`` as ``eoreps pretrain --loader stream`` reads it: its cached pack
    (packed here when missing, before any timing), streamed with ``--samples`` samples per epoch."""
    from eoreps.data.pack_cache import packed_source
    from eoreps.ssl.data import stream_source

    src = packed_source(args.data, {}, 0, ("s2",))
    stream = stream_source(src.data, ["s2"], None, 0, max_samples=args.samples, options=src.options)
    if stream.image_size != data.image_size or stream.in_chans != data.in_chans:
        raise SystemExit(f"the pack {src.data} holds {stream.in_chans} x {stream.image_size}, the in-memory "
                         f"patches {data.in_chans} x {data.image_size}: not the same data")
    return stream


def run_eoreps(data: Any, args: argparse.Namespace, stats: Any, bf16: bool | list[dict[str, Any]],
               fused: bool = True, stream: Any = None) -> float:
    """eoreps SimCLR through Lightning; ``bf16`` a list: ``--precision auto`` (its picks appended there);
    ``fused=False``: with ``torch.optim.AdamW``'s default loop in place of :func:`eoreps.optim.adamw`;
    ``stream``: train from these :class:`eoreps.ssl.data.StreamedPatches` (``--num-workers auto``)."""
    import eoreps.ssl.methods.base as base
    from eoreps.data.loader_workers import AUTO
    from eoreps.optim import adamw
    from eoreps.ssl.data import BatchDataset, PretrainDataModule
    from eoreps.ssl.methods import get_method
    from eoreps.ssl.pretrain import GRADIENT_CLIP  # clipped as eoreps pretrain (since 2026-12-07)

    total = args.warmup + args.steps
    method = get_method("simclr")(modalities=["s2"], in_chans=data.in_chans, stats=stats.to_dict(),
                                  backbone=args.backbone, backbone_kwargs=_backbone_kwargs(args.backbone),
                                  image_size=data.image_size, max_steps=total)
    if isinstance(bf16, list):
        bf16 = _auto(method, args, bf16)
    timer = _Timer(args.warmup, args.steps)
    # configure_optimizers (called by fit) builds the optimizer with base.adamw
    before = base.adamw
    base.adamw = adamw if fused else lambda params, **kw: adamw(params, fused=False, **kw)
    try:
        _trainer(total, "bf16-mixed" if bf16 else "32-true", [timer.callback], clip=GRADIENT_CLIP).fit(
            method, datamodule=PretrainDataModule(BatchDataset(data) if stream is None else stream,
                                                  args.batch_size, AUTO))
    finally:
        base.adamw = before
    return args.steps * args.batch_size / (timer.t1 - timer.t0)


def run_torchgeo(data: Any, args: argparse.Namespace, stats: Any) -> float:
    from torch.utils.data import DataLoader, Dataset
    from torchgeo.trainers import SimCLRTask

    if not args.backbone.startswith("timm:"):
        raise SystemExit(
            "torchgeo builds timm models: use --backbone timm:<name> to compare the same backbone"
        )
    mean, std = (t.view(1, -1, 1, 1) for t in stats.tensors("s2"))
    images = torch.nan_to_num((data.images["s2"] - mean) / std, nan=0.0)

    class Images(Dataset):
        def __len__(self) -> int:
            return len(images)

        def __getitems__(self, idx: list[int]) -> dict[str, torch.Tensor]:
            return {"image": images[torch.as_tensor(idx)]}

    total = args.warmup + args.steps
    task = SimCLRTask(
        model=args.backbone.split(":", 1)[1],
        in_channels=data.in_chans["s2"],
        version=1,
        layers=2,
        hidden_dim=None,
        output_dim=128,
        memory_bank_size=0,
        size=data.image_size[0],
        lr=1e-3,
        temperature=0.2,
    )
    timer = _Timer(args.warmup, args.steps)
    loader = DataLoader(
        Images(), batch_size=args.batch_size, shuffle=True, drop_last=True, collate_fn=lambda b: b
    )
    _trainer(total, "32-true", [timer.callback]).fit(task, train_dataloaders=loader)
    return args.steps * args.batch_size / (timer.t1 - timer.t0)


def rotated(chosen: list[str], r: int) -> list[str]:
    """The contenders in repeat ``r``: ``chosen`` rotated by ``r``, so no contender always runs first (a slow
    spell early in a repeat lands on a different contender each time); each still follows the same one in all
    but one repeat of ``len(chosen)``."""
    k = r % len(chosen) if chosen else 0
    return chosen[k:] + chosen[:k]


def ratios(results: dict[str, list[float]], bf16: set[str]) -> dict[str, dict[str, float | None]]:
    """Per contender: its median against the best anchor's median (``plain``, ``torchgeo``) and the limit's
    (``limit-bf16`` for the contenders in ``bf16``), and the same ratios *paired*: taken within each repeat
    (the contender's run over the best anchor's, or the limit's, of that repeat), then the median over
    repeats. Paired ratios cancel the machine's slow drift, which moves the runs of one repeat together;
    ``None`` where the reference was not run."""
    med = {c: statistics.median(v) for c, v in results.items() if v}
    anchors = [a for a in ("plain", "torchgeo") if a in med]
    out: dict[str, dict[str, float | None]] = {}
    for c, runs in results.items():
        lim = "limit-bf16" if c in bf16 else "limit"
        best = [max(results[a][r] for a in anchors) for r in range(len(runs))] if anchors else None
        out[c] = {
            "vs_best_anchor": med[c] / max(med[a] for a in anchors) if anchors else None,
            "vs_limit": med[c] / med[lim] if lim in med else None,
            "paired_vs_best_anchor": _paired(runs, best) if best else None,
            "paired_vs_limit": _paired(runs, results[lim]) if lim in med else None,
        }
    return out


def _paired(runs: list[float], reference: list[float]) -> float:
    """The median over repeats of ``runs[r] / reference[r]``."""
    return statistics.median(v / w for v, w in zip(runs, reference, strict=True))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="simeo", help="'simeo' or a dataset path")
    p.add_argument("--backbone", default="timm:resnet18")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--samples", type=int, default=2048, help="SimEO training patches held in memory")
    p.add_argument(
        "--only", default=",".join(CONTENDERS), help="comma-separated subset of " + ",".join(CONTENDERS)
    )
    p.add_argument("--out", default="benchmarks/results/ssl_throughput.json")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: cnn-tiny, batch 16, 2 steps, 1 repeat, no torchgeo; writes no JSON")
    args = p.parse_args()
    if not args.quick:  # --quick writes nothing; else refuse an --out it cannot write before any run
        from eoreps.io import check_out_file

        check_out_file(args.out, "--out")
    if args.quick:
        args.backbone, args.batch_size, args.steps, args.warmup, args.repeats, args.samples = (
            "cnn-tiny", 16, 2, 1, 1, 64)
        args.only = ",".join(c for c in args.only.split(",") if c != "torchgeo")
    torch.set_num_threads(args.threads)
    from eoreps.precision import cpu_summary

    cpu = cpu_summary()
    print(f"CPU: {cpu['cpu']}; flags {', '.join(cpu['flags']) or '-'}; precision auto -> {cpu['reason']}")
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    from eoreps.ssl.data import load_patches

    data = load_patches(args.data, ["s2"], "train", max_samples=args.samples)
    stats = data.stats()
    auto_picks: list[dict[str, Any]] = []  # what eoreps-auto resolved to in each repeat
    chosen = [c for c in args.only.split(",") if c]
    stream = stream_of(data, args) if "eoreps-stream" in chosen else None  # packed before any timing
    runners = {
        "limit": lambda: run_limit(data, args, False),
        "limit-bf16": lambda: run_limit(data, args, True),
        "limit-loop": lambda: run_limit(data, args, False, fused=False),
        "plain": lambda: run_plain(data, args, stats),
        "torchgeo": lambda: run_torchgeo(data, args, stats),
        "eoreps": lambda: run_eoreps(data, args, stats, False),
        "eoreps-bf16": lambda: run_eoreps(data, args, stats, True),
        "eoreps-auto": lambda: run_eoreps(data, args, stats, auto_picks),
        "eoreps-loop": lambda: run_eoreps(data, args, stats, False, fused=False),
        "eoreps-stream": lambda: run_eoreps(data, args, stats, False, stream=stream),
    }
    results: dict[str, list[float]] = {c: [] for c in chosen}
    for r in range(args.repeats):
        for c in rotated(chosen, r):
            results[c].append(runners[c]())
            print(f"repeat {r + 1}/{args.repeats}  {c:<12} {results[c][-1]:8.1f} pairs/s", flush=True)
    med = {c: statistics.median(v) for c, v in results.items()}
    bf16 = {c for c in chosen if c.endswith("bf16")} | (
        {"eoreps-auto"} if auto_picks and auto_picks[-1]["precision"] == "bf16" else set())
    table = ratios(results, bf16)
    print(f"\nSimCLR throughput on SimEO (synthetic) S2 {data.image_size[0]}x{data.image_size[1]}, "
          f"{data.in_chans['s2']} bands, {args.backbone}, batch {args.batch_size}, {args.threads} threads, "
          f"median of {args.repeats}; 'paired': the median over repeats of the ratio within each repeat")
    print(f"{'contender':<13} {'pairs/s':>9} {'vs best anchor':>15} {'vs limit':>9} {'paired anchor':>14} "
          f"{'paired limit':>13}")
    for c, v in med.items():
        cells = [f"{x:.2f}x" if x is not None else "-" for x in table[c].values()]
        print(f"{c:<13} {v:9.1f} {cells[0]:>15} {cells[1]:>9} {cells[2]:>14} {cells[3]:>13}")
    if args.quick:
        return
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)  # checked writable before the runs
    record = {"command": " ".join(["python", *sys.argv]), "args": vars(args), "cpu": cpu, "runs": results,
              "median": med, "ratios": table, "order": "rotated by one contender each repeat",
              **({"eoreps_auto": auto_picks} if auto_picks else {})}
    out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    from eoreps.errors import EoRepsError

    try:
        main()
    except EoRepsError as e:  # an --out it cannot write: one line, before any run
        print(f"ssl_throughput: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
