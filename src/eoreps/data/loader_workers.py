"""How many DataLoader worker processes stream a pack when the run does not say (``num_workers="auto"``).

The rule (:func:`auto_workers`): a worker needs a core the training does not use, else it preempts a
training thread.

* Training on the CPU: ``workers = cores - training threads`` (per process on the node; at most
  :data:`MAX_AUTO_WORKERS`), so ``0`` when the training threads take every core: the stream is then read in
  the training process between steps. Why: PyTorch's CPU kernels run on OpenMP threads that meet at a
  barrier after each parallel region, so a worker that takes one of their cores stalls every thread at the
  next barrier for as long as the worker runs. Measured on a 2-core Intel Xeon (2 training threads, multimodal
  pretraining on 32 px crops of 120 px patches, batch 64;
  ``benchmarks/results/stream_scale_2026-12-06_workers_sweep.json``): 0 workers streamed as fast as the
  in-memory path (0.99x), 2 workers at 0.80x of it although they read ~3x faster than the model consumes.
* Training on an accelerator: ``workers = cores - 1`` (one core drives the device; at most
  :data:`MAX_AUTO_WORKERS`), at least 1.

``cores`` are the CPUs this process may run on (``os.sched_getaffinity``: a container's or ``taskset``'s
limit, not the machine's count), divided among the training processes of the node.
"""

from __future__ import annotations

import os
from typing import Any

from eoreps.errors import ConfigError

AUTO = "auto"
MAX_AUTO_WORKERS = 8
"""More workers rarely help one training process: 2 workers read 3,300-3,700 samples/s (32 px crops of
120 px reBEN-layout patches) on the 2-core VM, ~3x what cnn-small trains on there."""


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no sched_getaffinity
        return max(1, os.cpu_count() or 1)


def auto_workers(on_cpu: bool, training_threads: int, cpus: int | None = None,
                 local_processes: int = 1) -> int:
    """Workers per training process under the module's rule.

    Args:
        on_cpu: the model trains on the CPU (else on an accelerator).
        training_threads: threads of the training's CPU kernels (``torch.get_num_threads()``).
        cpus: CPUs available (default :func:`available_cpus`).
        local_processes: training processes sharing these CPUs (DDP ranks on this node).
    """
    per_process = max(1, (cpus or available_cpus()) // max(1, local_processes))
    if on_cpu:
        return max(0, min(MAX_AUTO_WORKERS, per_process - max(1, training_threads)))
    return max(1, min(MAX_AUTO_WORKERS, per_process - 1))


def parse_workers(value: Any) -> int | str:
    """``num_workers``: a number >= 0 or ``"auto"`` (one-line :class:`ConfigError` otherwise)."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = -1
    if isinstance(value, bool) or n < 0 or (isinstance(value, float) and value != n):
        raise ConfigError(f"num_workers={value}: give a number of loader workers >= 0 or 'auto'")
    return n


def resolve_workers(requested: int | str, trainer: Any = None) -> int:
    """``requested`` as a number: ``"auto"`` by :func:`auto_workers` for ``trainer`` (a Lightning ``Trainer``:
    its accelerator and its processes on this node; ``None``: one process on the CPU)."""
    import torch

    if requested != AUTO:
        return int(requested)
    on_cpu, local = True, 1
    if trainer is not None:
        from lightning.pytorch.accelerators import CPUAccelerator

        on_cpu = isinstance(trainer.accelerator, CPUAccelerator)
        local = max(1, int(getattr(trainer, "num_devices", 1) or 1))
    return auto_workers(on_cpu, torch.get_num_threads(), local_processes=local)
