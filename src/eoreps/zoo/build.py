"""``eoreps zoo build``: plan the members, train them chunk by chunk, stream checkpoints to disk.

Resumable: a chunk whose shards (epochs 0..E) all verify is skipped; an unfinished chunk continues
from its last saved state (weights + optimizer state after epoch e, whose shards verify) or, without
one, restarts from scratch. Training is deterministic given the plan, so a restarted chunk rewrites
the same members: nothing is lost and nothing is duplicated (every member lives in exactly one chunk,
every (chunk, epoch) in exactly one shard).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from eoreps.errors import ConfigError
from eoreps.zoo import native
from eoreps.zoo.architectures import Arch, make_arch
from eoreps.zoo.backbones import (
    BackboneArch,
    BackboneGrid,
    backbone_name_of,
    chunk_backbone_members,
    plan_backbone_members,
    run_backbone_chunk,
)
from eoreps.zoo.chunks import Sink, chunk_seed, member_rows, run_chunk  # noqa: F401  (re-exported)
from eoreps.zoo.datasets import ZooData, load_dataset
from eoreps.zoo.grid import Grid, Member, plan_members
from eoreps.zoo.native_precision import kernel_record
from eoreps.zoo.population import TrainOptions, chunk_members, resolve_options
from eoreps.zoo.ray_backend import run_chunks_ray
from eoreps.zoo.store import ZooStore


@dataclass
class BuildConfig:
    """Everything that defines a zoo build (the plan is a pure function of it)."""

    out: Path
    dataset: str = "digits"
    arch: str = "cnn_digits"
    grid: Grid | BackboneGrid = field(default_factory=Grid)
    epochs: int = 10
    seed: int = 0
    options: TrainOptions = field(default_factory=TrainOptions)
    chunk_size: int = 256
    backend: str = "local"
    ray_address: str | None = None
    ray_cpus: int | None = None  # CPUs of a local Ray runtime (default: torch threads); see ray_backend
    ray_threads: int = 1  # torch threads (and Ray CPUs) of each Ray task
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> BuildConfig:
        if self.epochs < 0:
            raise ConfigError(f"epochs={self.epochs} must be >= 0")
        if self.chunk_size < 1:
            raise ConfigError(f"chunk_size={self.chunk_size} must be >= 1")
        if self.options.batch_size < 1:
            raise ConfigError(f"batch_size={self.options.batch_size} must be >= 1")
        self.options.check_engine()
        if self.options.data_order not in ("per_model", "shared"):
            raise ConfigError(f"data_order={self.options.data_order!r} must be per_model or shared")
        if self.backend not in ("local", "ray"):
            raise ConfigError(f"backend={self.backend!r} must be local or ray")
        if self.ray_cpus is not None and self.ray_cpus < 1:
            raise ConfigError(f"ray_cpus={self.ray_cpus} must be >= 1")
        if self.ray_threads < 1:
            raise ConfigError(f"ray_threads={self.ray_threads} must be >= 1")
        self.grid.validate()
        return self


def _plan(cfg: BuildConfig, data: ZooData) -> tuple[Any, list[Any], list[list[Any]], Any]:
    """Architecture, members, chunks and chunk runner of a zoo of layer-list networks or of backbones."""
    backbone = backbone_name_of(cfg.arch)
    if backbone is None:
        if isinstance(cfg.grid, BackboneGrid):
            raise ConfigError(f"arch={cfg.arch}: a backbone grid needs a backbone (arch=backbone:NAME)")
        arch = make_arch(cfg.arch, data.in_shape, data.num_classes)
        members = plan_members(cfg.grid, cfg.seed)
        return arch, members, chunk_members(members, cfg.chunk_size), run_chunk
    if not isinstance(cfg.grid, BackboneGrid):
        raise ConfigError(f"arch={cfg.arch}: a backbone zoo needs a backbone grid (seed, optimizer, lr, "
                          f"weight_decay, augment, train_fraction, init; see docs/zoo.md)")
    barch = BackboneArch(backbone, data.in_shape, data.num_classes, cfg.backbone_kwargs)
    bmembers = plan_backbone_members(cfg.grid, cfg.seed)
    return barch, bmembers, chunk_backbone_members(bmembers, barch, cfg.chunk_size), run_backbone_chunk


def _manifest(cfg: BuildConfig, arch: Arch, data: ZooData, chunks: list[list[Member]]) -> dict[str, Any]:
    extra = {"kind": "backbone", "backbone": arch.spec()} if isinstance(arch, BackboneArch) else {}
    return {
        **extra,
        "architecture": arch.name,
        "in_shape": list(arch.in_shape),
        "num_classes": arch.num_classes,
        "num_params": arch.num_params,
        "param_order": [[k, list(s)] for k, s in arch.param_shapes()],
        "dataset": data.summary(),
        "dataset_spec": cfg.dataset,
        "grid": dataclasses.asdict(cfg.grid),
        "epochs": cfg.epochs,
        "seed": cfg.seed,
        "options": dataclasses.asdict(cfg.options),
        "chunk_size": cfg.chunk_size,
        "n_models": sum(len(c) for c in chunks),
        "chunks": [[m.model_id for m in c] for c in chunks],
    }


# "backbone" (name, kwargs, head) is absent from layer-list zoos on both sides, so their resumes are unchanged
_PLAN_KEYS = ("architecture", "backbone", "in_shape", "num_classes", "param_order", "dataset", "grid",
              "epochs", "seed", "options", "chunks")


def _check_kernel_for_resume(out: Path, old: dict[str, Any], opts: TrainOptions, arch: Arch) -> None:
    """A zoo the native bf16 kernel trains resumes only where that kernel runs: otherwise one line naming
    the zoo's kernel and the way on (``resolve_options`` would advise engine=torch, which the zoo's
    recorded options then refuse)."""
    was = old.get("options", {})
    if (was.get("engine"), was.get("precision")) != ("native", "bf16") or \
            (opts.engine, opts.precision) != ("native", "bf16"):
        return
    try:
        native.load(arch, "bf16")
    except native.NativeUnavailable as e:
        raise ConfigError(
            f"{out}: this zoo trains with the native bf16 kernel of {arch.name}, which cannot run here "
            f"({e}); resume it on a CPU with {native.BF16_FLAG}, or continue with --precision fp32 "
            f"into a new --out"
        ) from None


def build_zoo(cfg: BuildConfig, data: ZooData | None = None) -> dict[str, Any]:
    """Build (or resume) the zoo described by ``cfg``; returns a summary (counts, seconds, images/s).

    ``cfg`` is not modified (the resolved engine/precision go into a copy)."""
    cfg = dataclasses.replace(cfg).validate()
    t0 = time.perf_counter()
    data = data if data is not None else load_dataset(cfg.dataset, cfg.seed)
    arch, members, chunks, runner = _plan(cfg, data)
    store = ZooStore(cfg.out)
    old = store.read_manifest() if store.exists() else None
    if old is not None:
        store.remove_partial_writes()  # a killed build may have left a temporary file mid-write
        # zoos built before the native engine existed trained with torch; 'auto' continues as before
        old["options"] = {"engine": "torch", **old.get("options", {})}
        opts = cfg.options
        # continue on the engine (and precision) the zoo was built with
        if opts.engine == "auto" and runner is run_chunk:
            cfg.options = dataclasses.replace(
                opts,
                engine=old["options"]["engine"],
                precision=old["options"].get("precision", "auto")
                if opts.precision == "auto"
                else opts.precision,
            )
    asked = cfg.options.precision
    if runner is run_chunk:
        if old is not None:
            _check_kernel_for_resume(cfg.out, old, cfg.options, arch)
        cfg.options = resolve_options(cfg.options, arch)  # type: ignore[arg-type]
    else:  # backbone zoos train on the torch engine in float32
        cfg.options = dataclasses.replace(cfg.options, engine="torch", precision="fp32")
    manifest = _manifest(cfg, arch, data, chunks)
    manifest["kernel"] = kernel_record(cfg.options, arch, asked)  # which kernel trains, and why
    if old is not None:
        diff = [k for k in _PLAN_KEYS if old.get(k) != _jsonable(manifest.get(k))]
        if diff:
            raise ConfigError(
                f"{cfg.out}: holds a zoo built with other options (differs in {', '.join(diff)}); "
                f"use a new output folder or repeat the original options to resume"
            )
    else:
        store.write_manifest(manifest)
    extra = {"arch": arch.name, "dataset": data.name}
    todo: list[int] = []
    for c in range(len(chunks)):
        if store.completed_epochs(c, cfg.epochs) <= cfg.epochs:
            todo.append(c)
    if cfg.backend == "ray":
        trained_images, train_cpu_s = run_chunks_ray(store, arch, chunks, todo, data, cfg, extra, runner)
    else:
        cpu0 = time.process_time()
        trained_images = sum(_run_local(store, arch, chunks, c, data, cfg, extra, runner) for c in todo)
        train_cpu_s = time.process_time() - cpu0
    index = store.write_index(len(chunks), cfg.epochs)
    secs = time.perf_counter() - t0
    return {
        "out": str(cfg.out),
        "n_models": len(members),
        "n_chunks": len(chunks),
        "chunks_trained": len(todo),
        "epochs": cfg.epochs,
        "rows": len(index),
        "seconds": round(secs, 2),
        "models_trained": sum(len(chunks[c]) for c in todo),
        "trained_images": trained_images,
        # CPU seconds of the processes that trained (this one, or the Ray workers' tasks), all threads
        "train_cpu_s": round(train_cpu_s, 2),
        "images_per_s": round(trained_images / secs, 1) if secs > 0 else 0.0,
    }


def _jsonable(v: Any) -> Any:
    import json

    return json.loads(json.dumps(v, default=str))


def _run_local(
    store: ZooStore,
    arch: Arch,
    chunks: list[list[Member]],
    c: int,
    data: ZooData,
    cfg: BuildConfig,
    extra: dict[str, Any],
    runner: Any = run_chunk,
) -> int:
    """Train (or finish) chunk ``c`` in this process; returns the number of images trained."""
    members = chunks[c]
    done = store.completed_epochs(c, cfg.epochs)
    state = store.load_state(c)
    if state is not None and not (0 <= int(state["epoch"]) < done):
        state = None  # state ahead of the verified shards (or stale): restart the chunk

    def sink(
        epoch: int, weights: torch.Tensor, rows: list[dict[str, Any]], st: dict[str, torch.Tensor]
    ) -> None:
        store.write_shard(c, epoch, [m.model_id for m in members], weights, rows)
        if epoch < cfg.epochs:
            store.save_state(c, st)

    images = runner(
        arch,
        members,
        data,
        cfg.options,
        cfg.epochs,
        chunk_seed(cfg.seed, c),
        sink,
        extra,
        state,
        desc=f"zoo chunk {c + 1}/{len(chunks)} ({len(members)} models)",
    )
    store.clear_state(c)
    return images
