"""What ``--precision auto`` means on this machine: bf16 where the device computes it natively, else fp32.

* CUDA (the run's accelerator is ``auto``, ``gpu`` or ``cuda`` and a CUDA device is present): bf16 when
  ``torch.cuda.is_bf16_supported(including_emulation=False)`` (Ampere and later: compute capability 8.0+),
  fp32 otherwise (a V100 or T4 only emulates bf16).
* CPU: bf16 may be fast when the CPU has AMX (``amx_bf16``) or AVX512-BF16 (``avx512_bf16``), read at run
  time from the ``flags`` line of ``/proc/cpuinfo``; fp32 elsewhere (bf16 autocast without those
  instructions is emulated and slower than fp32). With the flags the flags alone are not enough (ResNet-18
  at 32 px trains slower in bf16 on an AMX Xeon, faster on an AVX512-BF16 EPYC): runs that train
  (pretrain, fit, the trained cells of evaluate, hyper fit) time their own model in both precisions, and
  evaluate's linear / kNN cells their frozen encoder's feature pass, and keep bf16 only where it is
  measurably faster
  (:mod:`eoreps.precision_probe`, cached per model, shape, CPU and threads); this module's flag answer is
  marked :attr:`Choice.measurable` for them.
* ``EOREPS_AUTO_PRECISION=fp32|bf16`` overrides the detection (reproducible numbers across machines; the
  test suite sets ``fp32``).

:func:`resolve_auto` gives the choice with its reason (``"bf16: CPU has amx_bf16"``); configs resolve their
``precision`` with :func:`resolve_config`, which remembers whether it was ``auto`` (:func:`requested`);
:func:`precision_record` is what every output records (``"bf16: requested"`` for an explicit choice);
:func:`announce` prints it once per process. Reading the CPU flags imports nothing heavy; torch is imported
only to ask about a CUDA device, and only when an NVIDIA driver is present.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BF16_CPU_FLAGS", "SIMD_FLAGS", "Choice", "announce", "cpu_flags", "cpu_model", "cpu_summary",
           "keep_request", "precision_record", "requested", "resolve_auto", "resolve_config", "set_resolved"]

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # native bf16 dot products (AMX tiles, AVX512 VDPBF16PS)
#: the SIMD flags that matter for training speed: what benchmarks record and what keys a timed verdict
SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", *BF16_CPU_FLAGS, "amx_tile", "amx_int8")
CPUINFO = Path("/proc/cpuinfo")
ENV = "EOREPS_AUTO_PRECISION"
_GPU_ACCELERATORS = ("auto", "gpu", "cuda")


@dataclass(frozen=True)
class Choice:
    """A resolved precision (``fp32`` or ``bf16``) and why it was chosen; ``measurable``: chosen from the
    CPU flags alone, so a run that trains times its model to confirm it (:mod:`eoreps.precision_probe`)."""

    precision: str
    reason: str
    measurable: bool = field(default=False, compare=False)

    def record(self) -> dict[str, str]:
        """``{"precision": ..., "reason": ...}``, what outputs store."""
        return {"precision": self.precision, "reason": self.reason}


def _cpuinfo_field(name: str) -> str:
    """The first ``name : value`` of ``/proc/cpuinfo`` (``""`` when unreadable, e.g. macOS, Windows)."""
    try:
        text = CPUINFO.read_text(errors="replace")
    except OSError:
        return ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return ""


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``/proc/cpuinfo``; empty where there is none)."""
    return frozenset(_cpuinfo_field("flags").split())


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or the platform's processor string."""
    import platform

    return _cpuinfo_field("model name") or platform.processor() or "unknown CPU"


def _cuda_bf16() -> Choice | None:
    """The CUDA device's choice, or ``None`` when there is no usable CUDA device."""
    if not (Path("/proc/driver/nvidia").exists() or "torch" in sys.modules):
        return None  # no NVIDIA driver: do not import torch just to hear "no"
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(0)
    if _cuda_native_bf16(torch):
        return Choice("bf16", f"bf16: CUDA device {name} supports bf16")
    return Choice("fp32", f"fp32: CUDA device {name} lacks native bf16")


def _cuda_native_bf16(torch: Any) -> bool:
    """True when CUDA device 0 computes bf16 natively (compute capability 8.0+, or ROCm).

    ``torch.cuda.is_bf16_supported()`` counts emulation by default (``including_emulation=True``), which
    says yes on a V100 or T4, where bf16 autocast is slower than fp32; older torch lacks that argument, so
    the capability decides there."""
    supported = torch.cuda.is_bf16_supported
    if "including_emulation" in inspect.signature(supported).parameters:
        return bool(supported(including_emulation=False))
    return bool(torch.version.hip) or torch.cuda.get_device_capability(0)[0] >= 8


def resolve_auto(accelerator: str = "cpu") -> Choice:
    """What ``auto`` resolves to on ``accelerator`` (Lightning's name: ``cpu``, ``gpu``, ``auto``)."""
    forced = os.environ.get(ENV, "").strip().lower()
    if forced in ("fp32", "bf16"):
        return Choice(forced, f"{forced}: {ENV}={forced}")
    if str(accelerator).lower() in _GPU_ACCELERATORS:
        cuda = _cuda_bf16()
        if cuda is not None:
            return cuda
    have = sorted(f for f in BF16_CPU_FLAGS if f in cpu_flags())
    if have:
        return Choice("bf16", f"bf16: CPU has {' and '.join(have)}", measurable=True)
    return Choice("fp32", f"fp32: CPU lacks {' and '.join(BF16_CPU_FLAGS)}")


_REQUEST = "_precision_request"  # where resolve_config keeps (asked, resolved) on a config


def resolve_config(cfg: Any, allowed: Collection[str] | None = None, accelerator: str = "cpu") -> str:
    """``cfg.precision`` as a run stores it (:func:`eoreps.vocabulary.run_precision`, ``auto`` resolved for
    ``accelerator``), remembering on ``cfg`` what was asked for :func:`requested`.

    The request is kept beside the dataclass fields, not in one, so configs, their JSON and digests hold the
    resolved short form as before."""
    from eoreps.vocabulary import PRECISIONS, normalize_precision, run_precision

    allowed = (*PRECISIONS, "fp64") if allowed is None else allowed  # run_precision's default
    asked = normalize_precision(cfg.precision, allowed)
    resolved = run_precision(cfg.precision, allowed, accelerator)
    cfg.__dict__[_REQUEST] = (asked, resolved)
    return resolved


def requested(cfg: Any) -> str:
    """What ``cfg.precision`` was asked as: ``auto``, or the explicit value (also when it was set after
    :func:`resolve_config`, or never resolved by it)."""
    asked, resolved = cfg.__dict__.get(_REQUEST, (None, None))
    return asked if asked is not None and resolved == cfg.precision else cfg.precision


def set_resolved(cfg: Any, precision: str) -> None:
    """Store ``precision`` as what ``cfg.precision`` resolved to, keeping what it was asked as (``auto``
    settled by a measurement: :func:`eoreps.precision_probe.settle`)."""
    asked = requested(cfg)
    cfg.precision = precision
    cfg.__dict__[_REQUEST] = (asked, precision)


def keep_request(source: Any, target: Any) -> None:
    """Give ``target`` the precision of ``source`` and what it was asked as (a config built from another)."""
    target.precision = source.precision
    if _REQUEST in source.__dict__:
        target.__dict__[_REQUEST] = source.__dict__[_REQUEST]


def precision_record(precision: str, accelerator: str = "cpu", asked: str | None = None) -> dict[str, str]:
    """``{"precision": ..., "reason": ...}`` for outputs: the reason ``auto`` gives when ``asked`` is
    ``auto`` (:func:`requested`), else that ``precision`` was requested (and what ``auto`` would choose
    where that differs). ``asked=None`` (a caller that cannot tell): ``auto`` when it gives ``precision``."""
    auto = resolve_auto(accelerator)
    if asked is None:
        asked = "auto" if precision == auto.precision else precision
    if asked == "auto":
        return {"precision": precision, "reason": auto.reason}
    other = "" if auto.precision == precision else f" (auto would choose {auto.precision})"
    if other and auto.measurable:  # the flags allow bf16; a run on auto would time both first
        other = " (auto would time bf16 against fp32)"
    return {"precision": precision, "reason": f"{precision}: requested{other}"}


def cpu_summary(accelerator: str = "cpu") -> dict[str, object]:
    """What benchmarks print and record: the CPU model, its SIMD flags that matter here and what ``auto``
    picks from the flags (``{"cpu": ..., "flags": [...], "auto": "bf16", "reason": ...}``; on a CPU with
    the bf16 flags a training run measures first: :mod:`eoreps.precision_probe`)."""
    auto = resolve_auto(accelerator)
    note = " (a candidate: a run that trains times bf16 against fp32 first)" if auto.measurable else ""
    return {"cpu": cpu_model(), "flags": [f for f in SIMD_FLAGS if f in cpu_flags()],
            "auto": auto.precision, "reason": auto.reason + note}


_ANNOUNCED: set[tuple[str, str]] = set()


def announce(record: dict[str, str]) -> None:
    """Print ``precision: bf16 (bf16: CPU has amx_bf16)`` to stdout, once per process and choice.

    stdout, not stderr: stderr is kept for one-line errors (a bad input must leave exactly one line there).
    """
    key = (record["precision"], record["reason"])
    if key not in _ANNOUNCED:
        _ANNOUNCED.add(key)
        print(f"precision: {record['precision']} ({record['reason']})")
