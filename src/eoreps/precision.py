"""What ``--precision auto`` means on this machine: bf16 where the device computes it natively, else fp32.

* CUDA (the run's accelerator is ``auto``, ``gpu`` or ``cuda`` and a CUDA device is present): bf16 when
  ``torch.cuda.is_bf16_supported()`` (Ampere and later), fp32 otherwise.
* CPU: bf16 when the CPU has AMX (``amx_bf16``) or AVX512-BF16 (``avx512_bf16``), read at run time from the
  ``flags`` line of ``/proc/cpuinfo``; fp32 elsewhere (bf16 autocast without those instructions is
  emulated and slower than fp32).
* ``EOREPS_AUTO_PRECISION=fp32|bf16`` overrides the detection (reproducible numbers across machines; the
  test suite sets ``fp32``).

:func:`resolve_auto` gives the choice with its reason (``"bf16: CPU has amx_bf16"``);
:func:`precision_record` is what every output records; :func:`announce` prints it once per process. Reading
the CPU flags imports nothing heavy; torch is imported only to ask about a CUDA device, and only when an
NVIDIA driver is present.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BF16_CPU_FLAGS", "Choice", "announce", "cpu_flags", "cpu_model", "cpu_summary",
           "precision_record", "resolve_auto"]

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # native bf16 dot products (AMX tiles, AVX512 VDPBF16PS)
CPUINFO = Path("/proc/cpuinfo")
ENV = "EOREPS_AUTO_PRECISION"
_GPU_ACCELERATORS = ("auto", "gpu", "cuda")


@dataclass(frozen=True)
class Choice:
    """A resolved precision (``fp32`` or ``bf16``) and why it was chosen."""

    precision: str
    reason: str


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
    if torch.cuda.is_bf16_supported():
        return Choice("bf16", f"bf16: CUDA device {name} supports bf16")
    return Choice("fp32", f"fp32: CUDA device {name} lacks native bf16")


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
        return Choice("bf16", f"bf16: CPU has {' and '.join(have)}")
    return Choice("fp32", f"fp32: CPU lacks {' and '.join(BF16_CPU_FLAGS)}")


def precision_record(precision: str, accelerator: str = "cpu") -> dict[str, str]:
    """``{"precision": ..., "reason": ...}`` for outputs: the reason ``auto`` gives when it chose
    ``precision``, else that it was asked for (and what ``auto`` would have chosen)."""
    auto = resolve_auto(accelerator)
    if precision == auto.precision:
        return {"precision": precision, "reason": auto.reason}
    return {"precision": precision, "reason": f"{precision}: requested (auto would choose {auto.precision})"}


def cpu_summary(accelerator: str = "cpu") -> dict[str, object]:
    """What benchmarks print and record: the CPU model, its SIMD flags that matter here and what ``auto``
    picks (``{"cpu": ..., "flags": [...], "auto": "bf16", "reason": ...}``)."""
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", *BF16_CPU_FLAGS, "amx_tile", "amx_int8")
    auto = resolve_auto(accelerator)
    return {"cpu": cpu_model(), "flags": [f for f in wanted if f in cpu_flags()], "auto": auto.precision,
            "reason": auto.reason}


_ANNOUNCED: set[tuple[str, str]] = set()


def announce(record: dict[str, str]) -> None:
    """Print ``precision: bf16 (bf16: CPU has amx_bf16)`` to stdout, once per process and choice.

    stdout, not stderr: stderr is kept for one-line errors (a bad input must leave exactly one line there).
    """
    key = (record["precision"], record["reason"])
    if key not in _ANNOUNCED:
        _ANNOUNCED.add(key)
        print(f"precision: {record['precision']} ({record['reason']})")
