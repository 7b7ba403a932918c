"""``--backend ray``: spread zoo chunks over a Ray cluster.

Each unfinished chunk becomes one Ray task that trains the chunk and returns its checkpoints (all
epochs; a chunk of 256 ``cnn_s`` members x 26 epochs is ~65 MB); the driver writes the shards, so
workers need no shared file system. Resume works at chunk granularity: a chunk whose shards all
verify is not resubmitted; an interrupted chunk is retrained from scratch (deterministically).

Locally, when no Ray runtime is up and no address is given, :func:`run_chunks_ray` starts one with
:func:`local_ray_cpus` CPUs (``ray_cpus``, default: as many as torch threads) and each task trains at
``ray_threads`` torch threads on that many Ray CPUs: ``ray_cpus=2, ray_threads=1`` trains two members at
a time on a 2-core machine. On a cluster: start Ray (``ray start --head`` / ``ray start --address``)
and pass ``--ray-address auto`` (see ``docs/zoo.md``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch

from eoreps.errors import ConfigError
from eoreps.progress import progress
from eoreps.zoo.architectures import Arch
from eoreps.zoo.chunks import chunk_seed, run_chunk
from eoreps.zoo.datasets import ZooData
from eoreps.zoo.grid import Member
from eoreps.zoo.population import TrainOptions

if TYPE_CHECKING:  # build.py imports this module
    from eoreps.zoo.build import BuildConfig


def _train_chunk_remote(arch: Arch, members: list[Member], data: ZooData, options: TrainOptions, epochs: int,
                        seed: int, extra: dict[str, Any], threads: int, runner: Any = run_chunk
                        ) -> tuple[list[tuple[int, torch.Tensor, list]], int, float]:
    """Train one chunk on a worker (``runner``: :func:`eoreps.zoo.chunks.run_chunk` or a function with its
    signature, e.g. the backbone zoos'); returns its checkpoints, the number of images trained and the CPU
    seconds the worker process spent on it (all its threads)."""
    torch.set_num_threads(max(1, threads))
    cpu0 = time.process_time()
    out: list[tuple[int, torch.Tensor, list]] = []
    images = runner(arch, members, data, options, epochs, seed,
                       lambda e, w, rows, _st: out.append((e, w.clone(), rows)), extra, None)
    return out, images, time.process_time() - cpu0


def local_ray_cpus(cfg: BuildConfig) -> int:
    """CPUs of the Ray runtime :func:`run_chunks_ray` starts locally: ``cfg.ray_cpus`` when set, else as many
    as torch threads (at least ``cfg.ray_threads``, so that one task fits)."""
    cpus = torch.get_num_threads() if cfg.ray_cpus is None else cfg.ray_cpus
    return max(1, cpus, cfg.ray_threads)


def run_chunks_ray(
    store: Any,
    arch: Arch,
    chunks: list[list[Member]],
    todo: list[int],
    data: ZooData,
    cfg: BuildConfig,
    extra: dict[str, Any],
    runner: Any = run_chunk,
) -> tuple[int, float]:
    """Train chunks ``todo`` as Ray tasks and write their shards as they complete; returns the images trained
    and the CPU seconds the workers spent training (summed over tasks; the driver's own CPU not included)."""
    try:
        import ray
    except ImportError:
        raise ConfigError("backend=ray needs Ray: pip install 'eoreps[ray]'") from None
    started = False
    if not ray.is_initialized():
        if cfg.ray_address:
            ray.init(address=cfg.ray_address, ignore_reinit_error=True, log_to_driver=False)
        else:
            ray.init(num_cpus=local_ray_cpus(cfg), include_dashboard=False,
                     ignore_reinit_error=True, log_to_driver=False)
        started = True
    trained, cpu_s = 0, 0.0
    try:
        threads = cfg.ray_threads  # >= 1: BuildConfig.validate
        task = ray.remote(num_cpus=threads)(_train_chunk_remote)
        data_ref = ray.put(data)
        pending = {
            task.remote(
                arch, chunks[c], data_ref, cfg.options, cfg.epochs, chunk_seed(cfg.seed, c), extra, threads,
                runner
            ): c
            for c in todo
        }
        for _ in progress(range(len(pending)), desc="zoo chunks (ray)", unit="chunk"):
            ready, _rest = ray.wait(list(pending), num_returns=1)
            c = pending.pop(ready[0])
            ids = [m.model_id for m in chunks[c]]
            try:
                results, images, task_cpu_s = ray.get(ready[0])
            except (
                ray.exceptions.RayTaskError
            ) as e:  # e.g. a worker without a C++ compiler for --engine native
                cause = getattr(e, "cause", None)
                if isinstance(cause, ConfigError):
                    raise ConfigError(f"zoo chunk {c} on a Ray worker: {cause}") from None
                raise
            for epoch, weights, rows in results:
                store.write_shard(c, epoch, ids, weights, rows)
            store.clear_state(c)
            trained += images
            cpu_s += task_cpu_s
    finally:
        if started:
            ray.shutdown()
    return trained, cpu_s
