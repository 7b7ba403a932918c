"""Measured ``--precision auto`` on CPUs with native bf16: time the run's own step in fp32 and in bf16.

The CPU flags (:func:`eoreps.precision.resolve_auto`) say whether bf16 *can* be fast, not whether it is
for this model: on an Intel Xeon with AMX, ResNet-18 on 12 x 32 x 32 patches trains at 0.75x the fp32
speed under bf16 autocast (this probe's ratio in
``benchmarks/results/ssl_throughput_2026-12-06_measured_auto.json``; oneDNN's bf16 convolution backward
is slower than fp32 at these small spatial sizes), while on an AMD EPYC with AVX512-BF16 the same run is
1.46x faster (issue 25). So where the flags say bf16 and the run asked for ``auto``, the run times its own
model before training:

1. a :class:`Workload` holds the run's training step as a module whose forward returns the loss (an SSL
   method's own views, encoders, targets, heads and loss; a fit's or a cell's whole model; a hyper
   module's ``_step``) and a random batch of the run's per-step shape (what the step is fed: raw patches
   at the crop size for SSL, the batch size the run trains with); a *forward-only* workload
   (``forward_only=True``) holds a frozen encoder and one batch of its feature pass (evaluate's linear
   probe and kNN cells: :func:`eoreps.evaluation.protocols.base.cell_precision`);
2. :func:`time_workload` deep-copies the step once (the run's weights, statistics and random state are
   untouched) and runs forward + backward + AdamW steps on that batch in fp32 and under bf16 autocast on
   that one copy (a forward-only workload: forward passes in eval mode under ``torch.no_grad``, as
   :func:`eoreps.evaluation.features.extract_features` runs them): one warm-up step each (excluded), then
   interleaved rounds (alternating which goes
   first) until ``MAX_ROUNDS`` or ``BUDGET_S`` seconds, but never fewer than ``MIN_ROUNDS`` (so a run
   costs at least 2 + 2 x ``MIN_ROUNDS`` = 6 steps, more than ``BUDGET_S`` for a slow model), at the run's
   thread count; the medians are compared;
3. :func:`measured_choice` picks bf16 only when it is at least ``MARGIN`` (1.05x) faster, and caches the
   verdict as JSON in ``$EOREPS_CACHE/precision/`` (:func:`eoreps.digest.cache_dir`), keyed only by what
   sets the speed: the step's structure (``repr`` of its modules, which names every layer with its sizes,
   dropout rates and the like, plus every parameter's shape and whether it trains), the input shapes,
   channels-last, the CPU model, its SIMD flags, torch version and threads; seeds, learning rates and
   weight files do not re-time (a corrupt or foreign cache file is measured again). Lookup, timing and
   write happen under a file lock, so concurrent runs of one setup time it once;
4. :func:`settle` applies it to a run's config and returns the record every output stores, e.g.
   ``fp32: bf16 measured 0.750x fp32 for resnet18 12x32x32 b256 on this CPU (bf16 needs >= 1.05x;
   cached)``; :func:`settle_run` also stores it in the run folder (``precision.json``), so a resumed run
   keeps the precision it started with.

Wired into ``run_pretrain`` (:meth:`eoreps.ssl.methods.base.SSLMethod.precision_workload`), ``tasks.fit.fit``
(:meth:`eoreps.tasks.supervised.SupervisedModule.precision_workload`), the trained evaluation cells
and the frozen-encoder feature pass of the linear / kNN cells
(:func:`eoreps.evaluation.protocols.base.cell_precision`) and ``hyper fit`` (the module's own step).
CUDA keeps the capability rule, CPUs without the flags get fp32 without measuring, runs over several
processes keep the flag rule (every process must train in the same precision), and
``EOREPS_AUTO_PRECISION=fp32|bf16`` still decides without measuring.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eoreps import precision as _precision  # cpu_flags/cpu_model looked up per call (tests replace them)
from eoreps.errors import ConfigError
from eoreps.optim import adamw
from eoreps.precision import SIMD_FLAGS, Choice, precision_record, requested, resolve_auto, set_resolved
from eoreps.run_record import RunSetting

__all__ = ["MARGIN", "RUN_FILE", "Workload", "cache_key", "cache_root", "image_label", "measured_choice",
           "RUN_SETTING", "settle", "settle_run", "shapes_of", "time_workload"]

MARGIN = 1.05  # bf16 must be at least this much faster than fp32 (timing noise, the cast's numerics)
BUDGET_S = 8.0  # the timed rounds stop after this many seconds (warm-up included) ...
MIN_ROUNDS, MAX_ROUNDS = 2, 5  # ... once at least MIN_ROUNDS are done; never more than MAX_ROUNDS
RUN_FILE = "precision.json"  # the settled precision in a run folder (settle_run)
_VERSION = 3  # of the cache files' layout and of the timing procedure (3: fused AdamW)

#: ``timer(workload) -> (fp32 seconds per step, bf16 seconds per step)``
Timer = Callable[["Workload"], tuple[float, float]]


@dataclass
class Workload:
    """One training step of a run: module(s) returning its loss and a random batch of the run's shape.

    Attributes:
        parts: ``(module, inputs)`` pairs run in one step; ``module(inputs)`` is the loss (or an output
            whose floating tensors are averaged into one); ``inputs`` is a tensor, a tuple or a dict of
            tensors.
        label: a short description for the record (``resnet18 12x32x32 b256``).
        spec: further speed-relevant facts the modules do not show (e.g. the shapes of an SSL method's
            views); part of the cache key.
        channels_last: the run converts its model to channels-last (inputs stay as the run feeds them).
        forward_only: the run only evaluates the modules (eval mode, no gradients): the timed step is a
            forward pass, not forward + backward + AdamW; part of the cache key.
    """

    parts: list[tuple[Any, Any]]
    label: str
    spec: dict[str, Any] = field(default_factory=dict)
    channels_last: bool = False
    forward_only: bool = False
    shapes: list[Any] = field(init=False)

    def __post_init__(self) -> None:
        self.shapes = [shapes_of(x) for _, x in self.parts]


def shapes_of(x: Any) -> Any:
    """The shapes of a tensor or of (nested) dicts, lists, tuples and dataclasses of tensors (a streamed
    window batch, :class:`~eoreps.hyper.window_parts.RawViews`), JSON-able."""
    if isinstance(x, Mapping):
        return {str(k): shapes_of(v) for k, v in sorted(x.items())}
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: shapes_of(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, list | tuple):
        return [shapes_of(v) for v in x]
    return list(getattr(x, "shape", ()))


def image_label(backbone: str, in_chans: int, image_size: Sequence[int], batch: int) -> str:
    """``resnet18 12x32x32 b256`` (the ``timm:`` prefix dropped)."""
    name = backbone.split(":", 1)[-1]
    return f"{name} {in_chans}x{image_size[0]}x{image_size[1]} b{batch}"


def structure(module: Any) -> str:
    """A digest of what sets a module's speed: its ``repr`` (every layer with its sizes, strides, dropout
    rates, ...), every parameter's shape and whether it trains, and its class; not its weights."""
    params = [(tuple(p.shape), bool(p.requires_grad)) for p in module.parameters()]
    text = f"{type(module).__qualname__}\n{module!r}\n{params}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _reduce(out: Any) -> Any:
    """A scalar loss from any model output: the sum of the means of its floating tensors (in fp32)."""
    import torch

    if isinstance(out, torch.Tensor):
        return out.float().mean() if out.is_floating_point() and out.requires_grad else 0.0
    if isinstance(out, Mapping):
        out = list(out.values())
    if isinstance(out, list | tuple):
        return sum((_reduce(o) for o in out), 0.0)
    return 0.0


def _private_copy(module: Any) -> Any:
    """``copy.deepcopy(module)``, also where it uses ``torch.nn.utils.weight_norm`` (DINO's head): there the
    computed ``weight`` is a non-leaf tensor that deepcopy refuses (pytorch#103001); it is recomputed before
    every forward, so the copy is taken with it detached (the original keeps its own)."""
    from torch.nn.utils.weight_norm import WeightNorm

    saved = []
    for m in module.modules():
        for hook in m._forward_pre_hooks.values():
            w = getattr(m, hook.name, None) if isinstance(hook, WeightNorm) else None
            if w is not None and not w.is_leaf:
                saved.append((m, hook.name, w))
                setattr(m, hook.name, w.detach())
    try:
        return copy.deepcopy(module)
    finally:
        for m, name, w in saved:
            setattr(m, name, w)


def _stepper(workload: Workload) -> Callable[[bool], None]:
    """``step(bf16)``: one forward + backward + AdamW step on one private copy of the workload's modules
    (both precisions train the same copy: one set of weights and optimizer state in memory); a forward-only
    workload: one forward pass of the copy in eval mode without gradients."""
    import torch

    parts = []
    for module, inputs in workload.parts:
        m = _private_copy(module).train(not workload.forward_only)
        if workload.channels_last:  # as the run converts its model; its inputs stay as fed (NCHW)
            m = m.to(memory_format=torch.channels_last)
        parts.append((m, inputs))
    if workload.forward_only:
        @torch.no_grad()
        def forward(bf16: bool) -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                for m, x in parts:
                    m(x)

        return forward
    params = list({id(p): p for m, _ in parts for p in m.parameters() if p.requires_grad}.values())
    opt = adamw(params, lr=1e-4)  # the optimizer the timed training runs with

    def step(bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = sum((_reduce(m(x)) for m, x in parts), 0.0)
        opt.zero_grad(set_to_none=True)
        if isinstance(loss, torch.Tensor):
            loss.backward()
        opt.step()

    return step


def time_workload(workload: Workload) -> tuple[float, float]:
    """Median seconds per training step (forward pass: ``forward_only``) of ``workload`` in fp32 and under
    bf16 autocast (see the module docstring: warm-up excluded, interleaved rounds, bounded by
    ``BUDGET_S``). The global random state is restored afterwards, so a run is the same whether its verdict
    was measured or cached."""
    import torch

    with torch.random.fork_rng(devices=[]):
        start = time.perf_counter()
        step = _stepper(workload)
        for bf16 in (False, True):
            step(bf16)  # warm-up: oneDNN builds its kernels, the allocator grows
        times: dict[bool, list[float]] = {False: [], True: []}
        for r in range(MAX_ROUNDS):
            if r >= MIN_ROUNDS and time.perf_counter() - start > BUDGET_S:
                break
            for bf16 in ((False, True) if r % 2 == 0 else (True, False)):
                t0 = time.perf_counter()
                step(bf16)
                times[bf16].append(time.perf_counter() - t0)
    return statistics.median(times[False]), statistics.median(times[True])


def cache_key(workload: Workload) -> dict[str, Any]:
    """Everything a verdict depends on: the step's structure (:func:`structure`), extra facts, input
    shapes (batch included), memory format, forward-only or training, CPU model and flags, torch version,
    threads."""
    import torch

    # forward-only joins the key only when set: the verdicts cached for training steps keep their keys
    mode = {"forward_only": True} if workload.forward_only else {}
    return {"v": _VERSION, "modules": [structure(m) for m, _ in workload.parts], "spec": workload.spec,
            "shapes": workload.shapes, "channels_last": workload.channels_last, "cpu": _precision.cpu_model(),
            "flags": [f for f in SIMD_FLAGS if f in _precision.cpu_flags()], "torch": torch.__version__,
            "threads": torch.get_num_threads(), **mode}


def _cached_ratio(path: Path, key_digest: str) -> float | None:
    """The ratio stored at ``path`` for the key whose :func:`eoreps.digest.digest` is ``key_digest``
    (digests compare, where a key read back from JSON would not: tuples become lists); ``None`` when
    absent, unreadable, corrupt or another key's (then the run measures again and overwrites it)."""
    import json

    try:
        rec = json.loads(path.read_text())
        ratio = float(rec["ratio"]) if rec.get("digest") == key_digest else math.nan
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return ratio if math.isfinite(ratio) and ratio > 0 else None


def cache_root() -> Path:
    """Where verdicts are cached: ``$EOREPS_CACHE/precision`` (else ``~/.cache/eoreps/precision``)."""
    from eoreps.digest import cache_dir

    return cache_dir("precision")


def _lookup_or_measure(workload: Workload, key: dict[str, Any], path: Path, timer: Timer | None
                       ) -> tuple[float, bool]:
    """``(ratio, cached)``: the verdict at ``path``, else measured now and written there."""
    from eoreps.digest import digest
    from eoreps.io import write_json

    key_digest = digest(key)
    ratio = _cached_ratio(path, key_digest)  # re-read under the lock: another run may have just timed it
    if ratio is not None:
        return ratio, True
    fp32_s, bf16_s = (timer or time_workload)(workload)
    ratio = fp32_s / bf16_s
    try:
        write_json(path, {"key": key, "digest": key_digest, "ratio": ratio, "fp32_s_per_step": fp32_s,
                          "bf16_s_per_step": bf16_s, "label": workload.label,
                          "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    except OSError:  # a read-only cache: the verdict still holds for this run
        pass
    return ratio, False


def measured_choice(workload: Workload, timer: Timer | None = None) -> Choice:
    """fp32 or bf16 for ``workload`` on this CPU, from the cache or measured now (``timer``, default
    :func:`time_workload`); bf16 only when it is at least ``MARGIN`` times faster. Lookup, timing and write
    hold the cache file's lock (the one :mod:`eoreps.data.pack_cache` uses), so runs of one setup started
    together time it once and the others read the verdict."""
    from filelock import FileLock  # a dependency of torch and litdata

    from eoreps.digest import digest

    key = cache_key(workload)
    path = cache_root() / f"{digest(key)}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path) + ".lock")
        with lock:
            ratio, cached = _lookup_or_measure(workload, key, path, timer)
    except OSError:  # a read-only cache folder: no lock can be taken there, nothing can be written
        ratio, cached = _lookup_or_measure(workload, key, path, timer)
    pick = "bf16" if ratio >= MARGIN else "fp32"
    note = "; cached" if cached else ""
    # three decimals: 1.046 must not read "1.05x" beside "needs >= 1.05x"
    return Choice(pick, f"{pick}: bf16 measured {ratio:.3f}x fp32 for {workload.label} on this CPU "
                        f"(bf16 needs >= {MARGIN:.2f}x{note})")


def settle(cfg: Any, workload: Callable[[], Workload], accelerator: str = "cpu", measure: bool = True,
           timer: Timer | None = None) -> dict[str, str]:
    """The precision record of a run about to train, ``cfg.precision`` updated to the measured choice.

    Only when ``cfg`` asked for ``auto`` (:func:`eoreps.precision.requested`) and the flags say bf16 on
    the CPU (:attr:`Choice.measurable`) and ``measure`` holds is ``workload()`` built and timed; otherwise
    this is :func:`eoreps.precision.precision_record` as before (explicit choices, CUDA, the override, CPUs
    without the flags, ``measure=False``)."""
    asked = requested(cfg)
    if measure and asked == "auto" and resolve_auto(accelerator).measurable:
        choice = measured_choice(workload(), timer)
        set_resolved(cfg, choice.precision)
        return choice.record()
    return precision_record(cfg.precision, accelerator, asked)


def _conflict(path: Path, stored: dict[str, str], asked: dict[str, str]) -> str:
    """The one-line refusal of a resume that asks for another precision than the run trained in."""
    was, now = stored["precision"], asked["precision"]
    return (f"{path.parent}: trained in {was}; a resume cannot switch to {now} mid-run: resume with "
            f"--precision {was} (or auto), or use another output folder")


def _decode(rec: Mapping[str, Any]) -> dict[str, str]:
    """The ``{"precision", "reason"}`` record of a stored ``precision.json`` (without what was asked)."""
    return {"precision": str(rec["precision"]), "reason": str(rec["reason"])}


def _explicit(asked: Any) -> dict[str, str] | None:
    """The record an explicit precision gives (:func:`settle` keeps an explicit choice as it is), so a
    conflicting resume is refused before anything is resolved; ``None`` for what is not a precision name."""
    from eoreps.vocabulary import PRECISIONS, normalize_precision

    try:
        short = normalize_precision(str(asked), (*PRECISIONS, "fp64"))
    except ConfigError:
        return None
    return {"precision": short, "reason": f"{short}: requested"}


#: the settled precision of a run folder (``precision.json``): kept on resume, an explicit other one refused
RUN_SETTING: RunSetting[dict[str, str]] = RunSetting(
    RUN_FILE, encode=dict, decode=_decode, policy="error", conflict=_conflict,
    compatible=lambda a, b: a["precision"] == b["precision"], explicit=_explicit)


def settle_run(cfg: Any, out: Path, resuming: bool, workload: Callable[[], Workload],
               accelerator: str = "cpu", measure: bool = True, timer: Timer | None = None,
               previous: str | None = None) -> dict[str, str]:
    """:func:`settle` for a run folder ``out``: a fresh run settles and stores the record (and what was
    asked) in ``out/precision.json``; a resumed run keeps the stored precision, so it never changes
    mid-run: ``auto`` (whatever the first run asked) takes it over, an explicit other choice is refused
    (:class:`eoreps.run_record.RunSetting`, policy ``error``); an explicit same choice is recorded as asked.

    Args:
        resuming: the run continues from a checkpoint in ``out``.
        previous: the precision the run folder recorded elsewhere, for runs from before ``precision.json``.

    Raises:
        ConfigError: a resume explicitly asking for another precision than the run trained in.
    """
    kept = None if previous is None else {"precision": previous,
                                          "reason": f"{previous}: kept from the run being resumed"}
    rec = RUN_SETTING.settle(out, requested(cfg), resuming,
                             lambda: settle(cfg, workload, accelerator, measure, timer), previous=kept)
    set_resolved(cfg, rec["precision"])  # a kept record: the run goes on in the stored precision
    return rec
