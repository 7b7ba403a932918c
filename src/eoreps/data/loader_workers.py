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
limit, not the machine's count), divided among the training processes of the node when the mask covers the
whole node (a rank a launcher bound to its own cores already has its share). ``EOREPS_LOADER_WORKERS=N``
makes ``auto`` mean ``N`` (the test suite sets 0: no worker start-up for tiny data whatever the machine).

A run keeps its count (:func:`settle_workers`, ``loader.json`` in the run folder): LitData resumes a
stream "elastically" (re-striped, not the uninterrupted epoch's order) when the number of workers differs
from the checkpoint's, so a resume under ``auto`` reuses the stored count whatever the machine now has,
and every DDP rank uses the smallest count any rank resolved (:func:`agree_workers`: LitData assumes
equal ``num_workers`` across ranks).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from eoreps.errors import ConfigError
from eoreps.run_record import AUTO, RunSetting

ENV = "EOREPS_LOADER_WORKERS"
"""Environment variable: a number of workers ``auto`` resolves to (tests/conftest.py sets 0)."""
RUN_FILE = "loader.json"
"""The resolved count in a run folder (:func:`settle_workers`)."""
MAX_AUTO_WORKERS = 8
"""More workers rarely help one training process: 2 workers read 3,300-3,700 samples/s (32 px crops of
120 px reBEN-layout patches) on the 2-core VM, ~3x what cnn-small trains on there."""


def available_cpus(local_processes: int = 1) -> int:
    """CPUs for one of ``local_processes`` training processes: this process's affinity mask where the OS
    has one, else the machine's count; divided among the processes only when it covers the whole node
    (a mask smaller than the node is a per-rank binding, e.g. ``srun --cpu-bind``, already one share)."""
    node = max(1, os.cpu_count() or 1)
    try:
        mask = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no sched_getaffinity
        mask = node
    if mask < node:
        return mask
    return max(1, mask // max(1, local_processes))


def auto_workers(on_cpu: bool, training_threads: int, cpus: int | None = None,
                 local_processes: int = 1) -> int:
    """Workers per training process under the module's rule.

    Args:
        on_cpu: the model trains on the CPU (else on an accelerator).
        training_threads: threads of the training's CPU kernels (``torch.get_num_threads()``).
        cpus: CPUs available (default :func:`available_cpus`).
        local_processes: training processes sharing these CPUs (DDP ranks on this node).
    """
    if cpus is None:
        per_process = available_cpus(local_processes)
    else:
        per_process = max(1, cpus // max(1, local_processes))
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
    """``requested`` as a number: ``"auto"`` is ``$EOREPS_LOADER_WORKERS`` when set, else :func:`auto_workers`
    for ``trainer`` (a Lightning ``Trainer``: its accelerator and its processes on this node; ``None``: one
    process on the CPU)."""
    import torch

    if requested != AUTO:
        return int(requested)
    knob = os.environ.get(ENV, "").strip()
    if knob and knob.lower() != AUTO:
        try:
            return int(parse_workers(knob))
        except ConfigError:
            raise ConfigError(f"{ENV}={knob}: give a number of loader workers >= 0, or unset it") from None
    on_cpu, local = True, 1
    if trainer is not None:
        from lightning.pytorch.accelerators import CPUAccelerator

        on_cpu = isinstance(trainer.accelerator, CPUAccelerator)
        local = max(1, int(getattr(trainer, "num_devices", 1) or 1))
    return auto_workers(on_cpu, torch.get_num_threads(), local_processes=local)


def _same_stream(a: int, b: int) -> bool:
    """LitData counts 0 workers as 1 (the main process): 0 and 1 resume a stream the same way."""
    return max(1, a) == max(1, b)


def _conflict(path: Path, stored: int, workers: int) -> str:
    """The one-line warning of a resume that streams with another number of workers."""
    return (f"{path}: the run streamed with {stored} loader workers, resumed with {workers}: LitData "
            f"re-stripes the rest of the epoch (not the uninterrupted order); resume with --num-workers "
            f"{stored} (or auto) to keep it")


#: the stream's workers of a run folder (``loader.json``): kept on resume, an explicit other count warned
RUN_SETTING: RunSetting[int] = RunSetting(
    RUN_FILE, encode=lambda n: {"loader_workers": n}, decode=lambda rec: max(0, int(rec["loader_workers"])),
    policy="warn", conflict=_conflict, compatible=_same_stream)


def settle_workers(requested: int | str, out: Path, resuming: bool, trainer: Any = None) -> int:
    """The stream's workers for the run in ``out``: a fresh run resolves ``requested``
    (:func:`resolve_workers`) and stores it in ``out/loader.json``; a resume under ``auto`` reuses the
    stored count (whatever this machine's cores, threads or device now give); an explicit other count is
    used with a one-line warning: LitData then resumes the stream elastically, not as the uninterrupted
    epoch (:class:`eoreps.run_record.RunSetting`, policy ``warn``)."""
    return RUN_SETTING.settle(out, requested, resuming, lambda: resolve_workers(requested, trainer))


def agree_workers(workers: int, trainer: Any = None, record: Path | None = None) -> int:
    """The smallest of the ranks' ``workers`` (the Trainer's strategy reduces it; one process: itself).
    Call it in every rank after DDP started; global rank 0 rewrites ``record`` when the count changed."""
    if trainer is None or int(getattr(trainer, "world_size", 1) or 1) <= 1:
        return workers
    import torch

    strategy = trainer.strategy
    agreed = int(strategy.reduce(torch.tensor(workers, device=strategy.root_device), reduce_op="min"))
    if agreed != workers and record is not None and trainer.is_global_zero:
        RUN_SETTING.replace(record, agreed)
    return agreed
