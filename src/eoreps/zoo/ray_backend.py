"""``--backend ray``: spread zoo chunks over a Ray cluster.

Each unfinished chunk becomes one Ray task that trains the chunk and returns its checkpoints (all
epochs; a chunk of 256 ``cnn_s`` members x 26 epochs is ~65 MB); the driver writes the shards, so
workers need no shared file system. Resume works at chunk granularity: a chunk whose shards all
verify is not resubmitted; an interrupted chunk is retrained from scratch (deterministically).

Locally (tests): ``ray.init(num_cpus=2)`` is started by :func:`run_chunks_ray` when no Ray runtime is
up and no address is given. On a cluster: start Ray (``ray start --head`` / ``ray start --address``)
and pass ``--ray-address auto`` (see ``docs/zoo.md``).
"""

from __future__ import annotations

from typing import Any

import torch

from eoreps.errors import ConfigError
from eoreps.progress import progress
from eoreps.zoo.architectures import Arch
from eoreps.zoo.chunks import chunk_seed, run_chunk
from eoreps.zoo.datasets import ZooData
from eoreps.zoo.grid import Member
from eoreps.zoo.population import TrainOptions


def _train_chunk_remote(arch: Arch, members: list[Member], data: ZooData, options: TrainOptions, epochs: int,
                        seed: int, extra: dict[str, Any], threads: int, runner: Any = run_chunk
                        ) -> tuple[list[tuple[int, torch.Tensor, list]], int]:
    """Train one chunk on a worker (``runner``: :func:`eoreps.zoo.chunks.run_chunk` or a function with its
    signature, e.g. the backbone zoos'); returns its checkpoints and the number of images trained."""
    torch.set_num_threads(max(1, threads))
    out: list[tuple[int, torch.Tensor, list]] = []
    images = runner(arch, members, data, options, epochs, seed,
                       lambda e, w, rows, _st: out.append((e, w.clone(), rows)), extra, None)
    return out, images


def run_chunks_ray(
    store: Any,
    arch: Arch,
    chunks: list[list[Member]],
    todo: list[int],
    data: ZooData,
    cfg: Any,
    extra: dict[str, Any],
    runner: Any = run_chunk,
) -> int:
    """Train chunks ``todo`` as Ray tasks and write their shards as they complete; returns images trained."""
    try:
        import ray
    except ImportError:
        raise ConfigError("backend=ray needs Ray: pip install 'eoreps[ray]'") from None
    started = False
    if not ray.is_initialized():
        if cfg.ray_address:
            ray.init(address=cfg.ray_address, ignore_reinit_error=True, log_to_driver=False)
        else:
            ray.init(num_cpus=max(1, torch.get_num_threads()), include_dashboard=False,
                     ignore_reinit_error=True, log_to_driver=False)
        started = True
    trained = 0
    try:
        task = ray.remote(num_cpus=1)(_train_chunk_remote)
        data_ref = ray.put(data)
        pending = {
            task.remote(
                arch, chunks[c], data_ref, cfg.options, cfg.epochs, chunk_seed(cfg.seed, c), extra, 1, runner
            ): c
            for c in todo
        }
        for _ in progress(range(len(pending)), desc="zoo chunks (ray)", unit="chunk"):
            ready, _rest = ray.wait(list(pending), num_returns=1)
            c = pending.pop(ready[0])
            ids = [m.model_id for m in chunks[c]]
            try:
                results, images = ray.get(ready[0])
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
    finally:
        if started:
            ray.shutdown()
    return trained
