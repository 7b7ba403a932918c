"""Archive scale: pack a reBEN-layout archive at two sizes and pretrain on each; memory flat in size,
streaming vs in-memory throughput, loader vs model, pack throughput and size (one run, synthetic pixels).

Steps, each in its own subprocess (so each one's memory is its own):

1. write a BigEarthNet v2 (reBEN) layout archive -- LMDB of safetensors blobs + metadata parquet, 120 px,
   uint16 S2 DN and float32 S1 dB, random pixels -- with the project's generator
   (:func:`eoreps.data.reben_writer.write_ben_v2`) at each of ``--sizes`` pairs (default 2,000 and 20,000,
   ~5.5 GB for the larger; 80 % train, 10 % validation, 10 % test);
2. ``eoreps data pack`` each one (``--pack-workers``) and pretrain ``--warmup + --steps`` steps on each pack
   (same method, backbone, crop, batch; streamed with ``--workers`` DataLoader workers, default ``auto``:
   eoreps' rule, :mod:`eoreps.data.loader_workers`). **Peak memory** of
   every process is the peak over time of the summed resident set (VmRSS from ``/proc/<pid>/status``) of
   the process and all its descendants (DataLoader workers included), sampled every 0.1 s -- a sum that
   counts shared pages (libraries, copy-on-write) once per process, so it over-states. Each target
   (<= 3 GB, and the larger size within 15 % of the smaller) is judged twice: on that sum, and on the same
   sum less the mapped file pages (RssFile: the LMDB's and the chunks' page cache, which the kernel takes
   back under pressure; ``peak_nofile``); the JSON also holds the anonymous (RssAnon) and shared-memory
   (RssShmem: batches handed over by workers) peaks;
3. on the smallest archive, pretraining streamed from the pack vs in memory (``--data <archive>`` with
   ``loader=memory``): same method, backbone, crop and steps; target >= 0.9x;
4. the streaming loader alone (``--loader-workers`` workers, default 2) in samples/s vs what the default
   backbone consumes (forward + backward + AdamW step on S2 crops, images/s); target >= 2x;
5. pack throughput (samples/s, and per worker) and packed size vs source size (allocated bytes).

Throughput is in samples per second over the timed steps (after ``--warmup``); every measurement runs
``--repeats`` times, round-robin, and the median is reported. Results go to
``benchmarks/results/stream_scale_<date>.{json,md}``. Usage::

    python benchmarks/stream_scale.py                       # 2,000 and 20,000 pairs (~6 GB in --work)
    python benchmarks/stream_scale.py --quick               # 100 and 400 pairs, a few steps: a smoke run
    python benchmarks/stream_scale.py --sizes 2000,20000 --work /big/tmp --batch-size 64 --steps 30
    python benchmarks/stream_scale.py --sizes 2000,8000 --stage pack   # then the same with --stage train

``--stage pack`` keeps the pack runs an earlier ``--stage pack`` saved in ``--work`` (``stage_pack.json``,
rewritten after every pack) and runs only the missing ones: a pack stage stopped by a time limit
(``timeout 330 python benchmarks/stream_scale.py --stage pack``, repeated) or by ``--max-packs N`` (at most
``N`` packs per call) continues where it stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RESULT = "STREAM_SCALE_RESULT "
RSS_LIMIT_GB = 3.0
RSS_FLAT = 0.15
STREAM_TARGET = 0.9
LOADER_TARGET = 2.0
SPLIT_CYCLE = ("train",) * 8 + ("validation", "test")
MEMORY_KINDS = {"peak_rss": "peak RSS", "peak_nofile": "peak RSS less mapped files"}
"""The two memory verdicts: the resident set, and the same without file pages mapped by the readers (the
LMDB's and the chunks' page cache: shared, given back under memory pressure, but counted in each
process's RSS that maps them)."""
MEASURED_BY = ("peak over time of the summed VmRSS of the process tree (/proc, sampled every 0.1 s; "
               "DataLoader workers included)")


# ------------------------------------------------------------------------------------ process-tree memory
def _status_kb(pid: int) -> dict[str, int]:
    """``VmRSS``, ``RssAnon`` ... of ``pid`` in kB (empty when the process is gone)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                    out[key] = int(rest.split()[0])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return out


def _descendants(root: int) -> list[int]:
    """``root`` and every process below it (parents read from ``/proc/<pid>/stat``)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


@dataclasses.dataclass
class Measured:
    """One subprocess: exit code, wall seconds, peak tree memory (bytes, per ``/proc`` field), its result."""

    rc: int
    seconds: float
    peaks: dict[str, int]  # VmRSS, RssAnon, RssFile (mapped files: LMDB, chunks), RssShmem (worker batches),
    # NoFile = VmRSS - RssFile (what the page cache cannot give back)
    max_procs: int
    stdout: str
    stderr: str
    result: dict[str, Any]

    @property
    def peak_rss(self) -> int:
        return self.peaks["VmRSS"]

    @property
    def peak_anon(self) -> int:
        return self.peaks["RssAnon"]

    def memory(self) -> dict[str, Any]:
        """The fields of a results row: peaks (each over time, summed over the tree), processes, seconds."""
        return {"peak_rss": self.peak_rss, "peak_anon": self.peak_anon, "peak_file": self.peaks["RssFile"],
                "peak_shmem": self.peaks["RssShmem"], "peak_nofile": self.peaks["NoFile"],
                "procs": self.max_procs, "seconds": self.seconds}


def run_measured(cmd: Sequence[str], env: dict[str, str] | None, interval: float = 0.1) -> Measured:
    """Run ``cmd``, sampling its process tree's memory every ``interval`` s; stop on a non-zero exit."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, env=env, text=True)
        peaks, procs = dict.fromkeys(("VmRSS", "RssAnon", "RssFile", "RssShmem", "NoFile"), 0), 0
        while proc.poll() is None:
            kb = [_status_kb(p) for p in _descendants(proc.pid)]
            for k in kb:
                k["NoFile"] = k.get("VmRSS", 0) - k.get("RssFile", 0)
            for key in peaks:
                peaks[key] = max(peaks[key], 1024 * sum(k.get(key, 0) for k in kb))
            procs = max(procs, sum(1 for k in kb if k))
            time.sleep(interval)
        seconds = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode:
        sys.exit(f"stream_scale: {' '.join(cmd[:4])} ... failed (exit {proc.returncode}):\n{stderr[-3000:]}")
    lines = [ln for ln in stdout.splitlines() if ln.startswith(RESULT)]
    result = json.loads(lines[-1][len(RESULT):]) if lines else {}
    return Measured(proc.returncode, seconds, peaks, procs, stdout, stderr, result)


def allocated_bytes(path: Path) -> int:
    """Bytes allocated on disk under ``path`` (``du``: sparse files count what they use)."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_blocks * 512 for p in files)


# -------------------------------------------------------------------------------------------- children
def _pretrain_config(spec: dict[str, Any]) -> Any:
    """The :class:`~eoreps.ssl.pretrain.PretrainConfig` of ``spec`` (``loader`` kept only where the
    config has that field)."""
    from eoreps.ssl.pretrain import PretrainConfig

    names = {f.name for f in dataclasses.fields(PretrainConfig)}
    return PretrainConfig(**{k: v for k, v in spec.items() if k in names})


def _timed_callback(warmup: int, total: int, clock: dict[str, float]) -> Any:
    """A Lightning callback: times steps ``warmup .. total`` into ``clock`` and stops the run at ``total``."""
    import lightning as L

    class Timed(L.Callback):
        def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, *a: Any) -> None:
            if trainer.global_step == warmup:
                first = next(iter(batch.values())) if isinstance(batch, dict) else None
                clock["shape"] = list(getattr(first, "shape", ()))

        def on_train_batch_end(self, trainer: Any, *a: Any) -> None:
            # the clock starts at the end of the last warm-up step, so the timed window holds as many
            # batch fetches as steps (starting it at a batch's start would leave that fetch out)
            if trainer.global_step == warmup:
                clock["t0"] = time.perf_counter()
            if trainer.global_step >= total:
                clock.setdefault("t1", time.perf_counter())
                trainer.should_stop = True

    return Timed()


def child_pretrain(spec: dict[str, Any]) -> dict[str, Any]:
    """``eoreps pretrain`` (:func:`~eoreps.ssl.pretrain.run_pretrain`) for ``warmup + steps`` steps;
    samples/s over the timed steps."""
    from eoreps.ssl.pretrain import run_pretrain

    warmup, steps = spec.pop("warmup"), spec.pop("steps")
    clock: dict[str, float] = {}
    res = run_pretrain(_pretrain_config(spec), callbacks=[_timed_callback(warmup, warmup + steps, clock)])
    if "t1" not in clock:
        raise SystemExit(f"pretraining stopped after {res.steps} steps, before {warmup + steps}")
    record = json.loads((Path(spec["out"]) / "pretrain.json").read_text())
    return {"samples_per_s": steps * spec["batch_size"] / (clock["t1"] - clock["t0"]), "steps": res.steps,
            "batch_shape": clock.get("shape"), "loader_workers": record["data"].get("loader_workers", 0)}


def child_loader(spec: dict[str, Any]) -> dict[str, Any]:
    """The streaming loader alone (samples/s) and the default backbone's forward + backward + AdamW step
    on the same S2 crops (images/s)."""
    import torch

    from eoreps.models import create_backbone
    from eoreps.optim import adamw
    from eoreps.ssl.pretrain import build_data

    warmup, steps, batch = spec.pop("warmup"), spec.pop("steps"), spec["batch_size"]
    spec["num_workers"] = spec.pop("loader_workers")
    cfg = _pretrain_config(spec).resolved()
    train = build_data(cfg)[0].train
    if not hasattr(train, "loader"):
        raise SystemExit(f"{cfg.data}: the pretraining data is not streamed (no loader)")
    loader = train.loader(batch, int(cfg.num_workers))

    def timed(step: Callable[[int], None]) -> float:
        t0 = 0.0
        for i in range(warmup + steps):
            if i == warmup:
                t0 = time.perf_counter()
            step(i)
        return steps * batch / (time.perf_counter() - t0)

    it = iter(loader)

    def fetch(i: int) -> None:  # across epochs like training does (a new epoch restarts the workers)
        nonlocal it
        try:
            next(it)
        except StopIteration:
            it = iter(loader)
            next(it)

    loader_rate = timed(fetch)
    kwargs = dict(cfg.backbone_kwargs)
    bb = create_backbone(cfg.backbone, in_chans=train.in_chans["s2"], **kwargs)
    opt = adamw(bb.parameters(), lr=1e-3)  # the library's (fused since 2026-12-07)
    x = torch.randn(batch, train.in_chans["s2"], *train.image_size)

    def train_step(i: int) -> None:
        loss = bb(x).float().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return {"loader_samples_per_s": loader_rate, "backbone_images_per_s": timed(train_step),
            "backbone": cfg.backbone, "image_size": list(train.image_size), "workers": cfg.num_workers}


CHILDREN = {"pretrain": child_pretrain, "loader": child_loader}


def run_child(kind: str, spec: str, threads: int) -> None:
    """Entry point of a child process: run ``kind`` on the JSON ``spec``, print the result line."""
    import logging
    import warnings

    import torch

    torch.set_num_threads(threads)
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    print(RESULT + json.dumps(CHILDREN[kind](json.loads(spec))), flush=True)


# ---------------------------------------------------------------------------------------------- steps
class Bench:
    """The parent: writes the archives, packs them and runs the children."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(args.work)
        self.env = {**os.environ, "EOREPS_NO_PROGRESS": "1", "EOREPS_CACHE": str(self.work / "cache"),
                    "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
                    "PYTHONWARNINGS": "ignore"}
        self.runs = 0

    def archive(self, n: int) -> tuple[Path, float]:
        """The reBEN-layout archive of ``n`` pairs (written unless complete already) and seconds spent."""
        from eoreps.data.reben_writer import write_ben_v2

        root = self.work / f"reben_{n}"
        done = root / "metadata.parquet"
        if done.is_file():
            return root, 0.0
        shutil.rmtree(root, ignore_errors=True)
        t0 = time.perf_counter()
        write_ben_v2(root, n=n, n_flagged=0, side=self.args.side, seed=self.args.seed, splits=SPLIT_CYCLE)
        return root, time.perf_counter() - t0

    def pack(self, src: Path, n: int) -> dict[str, Any]:
        """``eoreps data pack`` of ``src``: its peak tree memory, samples/s and packed size."""
        out = self.work / f"pack_{n}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "eoreps.cli", "data", "pack", str(src), "--out", str(out),
               "--workers", str(self.args.pack_workers)]
        m = run_measured(cmd, self.env)
        rate = re.search(r"\(([\d.]+) samples/s\)", m.stdout)
        if rate is None:
            raise SystemExit(f"eoreps data pack printed no samples/s line; its output was:\n{m.stdout}")
        samples = float(rate.group(1))
        return {"pack": str(out), **m.memory(), "samples_per_s": samples,
                "per_worker": samples / max(1, self.args.pack_workers), "source_bytes": allocated_bytes(src),
                "packed_bytes": allocated_bytes(out)}

    def spec(self, data: Path, memory: bool) -> dict[str, Any]:
        a = self.args
        self.runs += 1
        spec = {"method": a.method, "backbone": a.backbone, "data": str(data), "batch_size": a.batch_size,
                "crop": a.crop, "epochs": 10_000, "knn": False, "monitor_samples": a.batch_size,
                "checkpoint_every": 10_000_000, "precision": a.precision, "accelerator": a.accelerator,
                "num_workers": "auto" if memory else a.workers, "seed": a.seed,
                "out": str(self.work / "runs" / f"run{self.runs}"), "warmup": a.warmup, "steps": a.steps}
        if memory:
            spec["loader"] = "memory"
        return spec

    def child(self, kind: str, spec: dict[str, Any]) -> Measured:
        cmd = [sys.executable, __file__, "--child", kind, "--spec", json.dumps(spec),
               "--threads", str(self.args.threads)]
        m = run_measured(cmd, self.env)
        shutil.rmtree(spec["out"], ignore_errors=True)
        return m


def _gb(b: float) -> str:
    return f"{b / 2**30:.2f} GB"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _earlier_packs(prior: dict[str, Any], n: int, root: Path) -> tuple[list[dict[str, Any]], float]:
    """Pack runs of ``n`` pairs an earlier ``--stage pack`` saved (``prior``: its ``stage_pack.json``) and
    its archive's write seconds: kept while their archive and last pack are still complete on disk."""
    saved = prior.get(str(n)) or {}
    runs = list(saved.get("pack_runs", ()))
    complete = runs and Path(runs[-1]["pack"], "eoreps_pack.json").is_file()
    if saved.get("archive") != str(root) or not complete:
        return [], 0.0
    return runs, float(saved.get("write_s", 0.0))


def pack_sizes(bench: Bench, sizes: Sequence[int], staged: Path | None, out: dict[int, Any],
               max_packs: int | None = None) -> bool:
    """Write the archives and pack each ``--repeats`` times into ``out[n]`` (median and every run); whether
    every run is done.

    With ``staged`` (``--stage pack``) the runs an earlier call saved there are kept, only the missing ones
    run, and the file is rewritten after every pack: a pack stage cut off by a time limit, or stopped after
    ``max_packs`` packs, continues where it stopped (each pack re-packs into the same folder, so the folder
    holds a complete pack once every run is done)."""
    done = 0
    prior = json.loads(staged.read_text()) if staged is not None and staged.is_file() else {}
    for n in sizes:
        root, secs = bench.archive(n)
        print(f"archive {n} pairs: {root} ({_gb(allocated_bytes(root))}, written in {secs:.1f} s)",
              flush=True)
        packs, earlier_s = _earlier_packs(prior, n, root)
        secs = secs or earlier_s
        while True:
            if packs:
                p = {k: (statistics.median(q[k] for q in packs) if isinstance(v, (int, float)) else v)
                     for k, v in packs[-1].items()}
                out[n] = {"archive": str(root), "write_s": secs, "pack": p, "pack_runs": packs}
                if staged is not None:
                    staged.write_text(json.dumps({str(k): v for k, v in out.items()}, indent=2) + "\n")
            if len(packs) >= bench.args.repeats:
                break
            if max_packs is not None and done >= max_packs:
                return False
            done += 1
            packs.append(bench.pack(root, n))  # each packs anew into the same folder
            print(f"pack {n} run {len(packs)}: {packs[-1]['samples_per_s']:.1f} samples/s", flush=True)
        print(f"pack {n}: {p['samples_per_s']:.1f} samples/s, peak {_gb(p['peak_rss'])}", flush=True)
    return True


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement of the module docstring; returns the results (medians and every run)."""
    bench = Bench(args)
    sizes = sorted(args.sizes)
    small = sizes[0]
    res: dict[str, Any] = {"sizes": {}, "runs": {}}
    staged = Path(args.work) / "stage_pack.json"  # the pack stage's results, for a later --stage train
    if args.stage == "train":
        if not staged.is_file():
            sys.exit(f"stream_scale: {staged} is missing; run --stage pack first (same --work and --sizes)")
        res["sizes"] = {int(n): v for n, v in json.loads(staged.read_text()).items()}
        if sorted(res["sizes"]) != sizes:
            sys.exit(f"stream_scale: {staged} holds sizes {sorted(res['sizes'])}, not {sizes}; "
                     "run --stage pack")
    if args.stage != "train":
        complete = pack_sizes(bench, sizes, staged if args.stage == "pack" else None, res["sizes"],
                              args.max_packs if args.stage == "pack" else None)
        if not complete:
            sys.exit(f"stream_scale: stopped after --max-packs {args.max_packs} packs (saved in {staged}); "
                     "run --stage pack again to continue")
    archives = {n: Path(v["archive"]) for n, v in res["sizes"].items()}
    if args.stage == "pack":  # pack_sizes saved the results in `staged`
        return res
    runs: dict[str, list[dict[str, Any]]] = {}

    def record(name: str, m: Measured) -> None:
        runs.setdefault(name, []).append({**m.result, **m.memory()})
        print(f"  {name:<16} {json.dumps(runs[name][-1])}", flush=True)

    for r in range(args.repeats):
        print(f"repeat {r + 1}/{args.repeats}", flush=True)
        for n in sizes:
            record(f"stream_{n}", bench.child("pretrain", bench.spec(Path(res["sizes"][n]["pack"]["pack"]),
                                                                     memory=False)))
        record(f"memory_{small}", bench.child("pretrain", bench.spec(archives[small], memory=True)))
        pack = Path(res["sizes"][small]["pack"]["pack"])
        record("loader", bench.child("loader", {**bench.spec(pack, memory=False),
                                                "loader_workers": args.loader_workers}))
    res["runs"] = runs
    res["median"] = {name: {k: statistics.median(r[k] for r in rs) for k, v in rs[0].items()
                            if isinstance(v, (int, float))} for name, rs in runs.items()}
    return res


def _workers(args: argparse.Namespace, med: dict[str, Any], small: int) -> str:
    """The streamed runs' workers as asked, and what ``auto`` chose."""
    chose = med.get(f"stream_{small}", {}).get("loader_workers")
    auto = args.workers == "auto" and chose is not None
    return f"{args.workers} ({chose:g})" if auto else str(args.workers)


def _pack_repeats(args: argparse.Namespace, res: dict[str, Any]) -> str:
    """`` (packs: of N)`` when the packs ran another number of times (an earlier ``--stage pack``)."""
    n = min((len(v.get("pack_runs", ())) for v in res["sizes"].values()), default=0)
    return f" (packs: of {n})" if n and n != args.repeats else ""


def report(args: argparse.Namespace, res: dict[str, Any]) -> list[str]:
    """The printed lines (also the markdown file's body): numbers, ratios and PASS/FAIL verdicts."""
    sizes = sorted(args.sizes)
    small, large = sizes[0], sizes[-1]
    med = res["median"]
    lines = [f"Archive scale on a synthetic reBEN-layout archive ({args.side} px, S2 uint16 + S1 float32), "
             f"method {args.method}, backbone {args.backbone or 'default'}, crop {args.crop or 'default'}, "
             f"batch {args.batch_size}, {args.warmup}+{args.steps} steps, "
             f"{_workers(args, med, small)} loader workers, "
             f"{args.threads} threads, median of {args.repeats}{_pack_repeats(args, res)}",
             f"memory: {MEASURED_BY}", ""]
    lines.append(f"{'size':>7} {'pack peak':>10} {'(no file)':>9} {'pretrain peak':>14} {'(no file)':>9} "
                 f"{'pack/s':>8} {'/worker':>8} {'source':>9} {'packed':>9} {'ratio':>6}")
    peaks: dict[str, dict[int, dict[str, float]]] = {"pack": {}, "pretrain": {}}
    for n in sizes:
        p, s = res["sizes"][n]["pack"], med[f"stream_{n}"]
        peaks["pack"][n], peaks["pretrain"][n] = p, s
        lines.append(f"{n:>7} {_gb(p['peak_rss']):>10} {_gb(p['peak_nofile']):>9} {_gb(s['peak_rss']):>14} "
                     f"{_gb(s['peak_nofile']):>9} {p['samples_per_s']:>8.1f} {p['per_worker']:>8.1f} "
                     f"{_gb(p['source_bytes']):>9} {_gb(p['packed_bytes']):>9} "
                     f"{p['packed_bytes'] / p['source_bytes']:>5.2f}x")
    lines.append("")
    for key, label in MEMORY_KINDS.items():
        for what, by in peaks.items():
            top = max(v[key] for v in by.values())
            lines.append(f"{_verdict(top <= RSS_LIMIT_GB * 2**30)}  {label} of {what} <= {RSS_LIMIT_GB:g} GB "
                         f"(max {_gb(top)})")
            change = by[large][key] / by[small][key] - 1
            lines.append(f"{_verdict(abs(change) <= RSS_FLAT)}  {label} of {what} flat in size: {large} vs "
                         f"{small} pairs {change:+.1%} (target within {RSS_FLAT:.0%})")
    stream, memory = med[f"stream_{small}"]["samples_per_s"], med[f"memory_{small}"]["samples_per_s"]
    lines.append(f"{_verdict(stream >= STREAM_TARGET * memory)}  streaming vs in-memory pretraining on "
                 f"{small} pairs: {stream:.1f} vs {memory:.1f} samples/s = {stream / memory:.2f}x "
                 f"(target >= {STREAM_TARGET}x)")
    lo = med["loader"]
    ratio = lo["loader_samples_per_s"] / lo["backbone_images_per_s"]
    lines.append(f"{_verdict(ratio >= LOADER_TARGET)}  loader alone ({args.loader_workers} workers) "
                 f"{lo['loader_samples_per_s']:.1f} samples/s vs the backbone's forward+backward "
                 f"{lo['backbone_images_per_s']:.1f} S2 images/s = {ratio:.2f}x (target >= {LOADER_TARGET}x)")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[2000, 20000],
                   help="archive sizes in S1/S2 pairs, comma-separated")
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "eoreps_stream_scale"),
                   help="folder of the archives, packs and runs (kept: a rerun reuses complete archives)")
    p.add_argument("--side", type=int, default=120, help="10 m patch side in px (BigEarthNet: 120)")
    p.add_argument("--method", default="multimodal")
    p.add_argument("--backbone", default="", help="'' = the method's default")
    p.add_argument("--crop", type=int, default=None, help="px (default: the backbone's)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=30, help="timed steps per run")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--workers", default="auto",
                   help="DataLoader workers of the pretraining runs ('auto': eoreps' rule, docs/data.md; the "
                        "in-memory run has none under 'auto')")
    p.add_argument("--loader-workers", type=int, default=2, help="workers of the loader-alone measurement")
    p.add_argument("--pack-workers", type=int, default=2)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--accelerator", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stage", choices=("all", "pack", "train"), default="all",
                   help="pack: write and pack the archives only (results kept in --work); train: the "
                        "pretraining and loader runs on those packs, then the report (each stage fits a "
                        "shorter exclusive slot)")
    p.add_argument("--max-packs", type=int, default=None,
                   help="--stage pack: stop after this many packs (each call continues the last one's runs)")
    p.add_argument("--quick", action="store_true", help="smoke run: 100 and 400 pairs, 2+3 steps, 1 repeat")
    p.add_argument("--out", default="", help="results stem (default benchmarks/results/stream_scale_<date>)")
    p.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return run_child(args.child, args.spec, args.threads)
    if args.quick:
        args.sizes, args.batch_size, args.warmup, args.steps, args.repeats = [100, 400], 16, 2, 3, 1
    if len(args.sizes) < 2:
        p.error("--sizes needs two sizes or more (memory is compared between the smallest and the largest)")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from eoreps.smoke import smoke_fields, smoke_markdown

    res = measure(args)
    if args.stage == "pack":
        print(f"\npack stage done ({Path(args.work) / 'stage_pack.json'}); now run --stage train")
        return
    lines = report(args, res)
    print("\n" + "\n".join(lines))
    stem = Path(args.out or Path(__file__).parent / "results" / f"stream_scale_{time.strftime('%Y-%m-%d')}"
                f"{'_quick' if args.quick else ''}")
    stem.parent.mkdir(parents=True, exist_ok=True)
    detail = f"{args.sizes} pairs, {args.steps} steps" if args.quick else ""
    Path(f"{stem}.json").write_text(json.dumps({"args": vars(args), "measured_by": MEASURED_BY, **res,
                                                "lines": lines, **smoke_fields(args.quick, detail)},
                                               indent=2, default=str) + "\n")
    head = smoke_markdown(detail) if args.quick else ""
    Path(f"{stem}.md").write_text(f"# Archive scale (benchmarks/stream_scale.py)\n\n{head}```\n"
                                  + "\n".join(lines) + "\n```\n")
    print(f"\nwrote {stem}.json and {stem}.md")


if __name__ == "__main__":
    main()
