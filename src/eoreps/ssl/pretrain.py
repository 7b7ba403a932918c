"""The pretraining runner behind ``eoreps pretrain``: data, method, Trainer, checkpoints, export.

``run_pretrain(PretrainConfig(method="multimodal", modalities=["s2", "s1"]))``:

1. reads the training split of ``data`` (the method's registered ``build_data`` hook; Tile2Vec: large
   scenes): streamed from a pack under ``loader="stream"`` (another source is packed once into the
   cache), held in memory under ``"memory"``; per-band statistics are stored in checkpoints and cards;
2. builds the method (:func:`eoreps.ssl.methods.get_method`) and a Lightning ``Trainer`` that stops
   after ``max_steps = epochs * steps_per_epoch`` optimisation steps (a step budget, so a resumed run
   ends after the same total number of steps wherever it was killed);
3. checkpoints ``OUT/checkpoints/last.ckpt`` every ``checkpoint_every`` steps (mid-epoch included) and
   at the end, atomically (:mod:`eoreps.checkpoints`: a kill or a full disk keeps the previous one);
   ``resume=True`` continues from it (checked to come from the same method, backbone and modalities)
   with the sample order, ``logs/metrics.csv`` rows and wall time of an uninterrupted run;
4. monitors collapse (and kNN accuracy) each epoch (:class:`eoreps.ssl.monitor.SSLMonitor`);
5. exports the encoders with their cards (:func:`eoreps.ssl.export.export_encoders`) and writes
   ``OUT/pretrain.json``.

Multi-process: ``devices`` / ``num_nodes`` / ``strategy`` go to Lightning (``strategy="ddp"`` under
``torchrun`` or SLURM, ``"ddp_spawn"`` for local CPU processes); negatives of the contrastive methods
are gathered across processes. See ``docs/ssl.md``.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Collection
from dataclasses import InitVar, asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eoreps.cli_config import opt, parse_devices, parse_kwargs
from eoreps.data.loader_workers import AUTO, parse_workers, settle_workers
from eoreps.data.loader_workers import RUN_FILE as LOADER_FILE
from eoreps.data.pack_cache import LOADER_HELP, check_loader
from eoreps.errors import ConfigError
from eoreps.precision import keep_request, resolve_config
from eoreps.ssl.methods.registry import list_methods
from eoreps.vocabulary import PRECISION_HELP

if TYPE_CHECKING:
    from eoreps.checkpoints import ResumePoint
    from eoreps.ssl.methods import MethodData

DEFAULT_BACKBONE_KWARGS = {"timm:vit": {"img_size": 32, "patch_size": 4}}  # img_size: set to the data's
GRADIENT_CLIP = 3.0  # the gradient norm every pretraining run clips to


_QUICK: dict[str, Any] = {  # what --quick shrinks (each to at most this), unless in quick_keep
    "epochs": lambda v: min(v, 1),
    "batch_size": lambda v: min(v, 32),
    "max_samples": lambda v: min(v or 128, 128),
    "monitor_samples": lambda v: min(v, 64),
    "knn_train_samples": lambda v: min(v, 128),
    "knn_val_samples": lambda v: min(v, 64),
    "checkpoint_every": lambda v: min(v, 2),
}


@dataclass
class PretrainConfig:
    """Options of one pretraining run (the ``eoreps pretrain`` options).

    Attributes:
        method: ``simclr``, ``multimodal``, ``moco``, ``byol``, ``dino``, ``mae`` or ``tile2vec``.
        data: ``"simeo"`` or a dataset path.
        modalities: image modalities (multimodal: one encoder each; others: stacked channels).
        backbone: backbone name (``cnn-small``, ``timm:resnet18``, ``timm:vit_tiny_patch16_224``, ...);
            ``""``: the method's default (``SSLMethod.default_backbone``: a ViT for MAE, ``cnn-small`` else).
        backbone_kwargs: backbone options (ViTs default to ``patch_size=4`` and ``img_size`` = the images').
        method_kwargs: method options (e.g. ``{"temperature": 0.1}``, see each method's class; Tile2Vec's
            ``tile_size``, ``neighborhood``, ``num_scenes``, ``scene_size``: its registered options).
        epochs: passes over the training data (sets the step budget).
        batch_size: samples per step and process.
        lr, weight_decay: AdamW settings (linear warmup, cosine decay).
        max_samples: cap on training samples (all when ``None``).
        precision: ``auto`` (bf16 on CUDA with bf16, and on CPUs with AMX or AVX512-BF16 where the timed
            encoder step is >= 1.05x faster: :mod:`eoreps.precision_probe`; else fp32), ``fp32``, ``bf16``
            or ``fp16`` in any spelling of :mod:`eoreps.vocabulary`; stored resolved, in the short form
            (``"fp32"``, ``"bf16"``).
        seed: seed of everything.
        out: output folder.
        checkpoint_every: steps between checkpoints (``last.ckpt``).
        resume: continue from ``out/checkpoints/last.ckpt``.
        monitor_samples: samples embedded for the collapse statistics.
        knn: online kNN accuracy on the validation split each epoch (labelled data only).
        knn_train_samples, knn_val_samples: sizes of the kNN bank and validation set.
        accelerator, devices, num_nodes, strategy: Lightning distribution settings.
        num_workers: DataLoader processes streaming a pack (LitData workers), or ``"auto"``
            (:func:`eoreps.data.loader_workers.auto_workers`: on the CPU the cores the training threads leave
            free); in-memory data is served without workers under ``"auto"`` (a batch is an index_select).
        crop: random crop in px of each training patch (cut per sample in the stream's workers, per batch
            in memory); ``None``: the backbone's default (:func:`eoreps.ssl.data.default_crop`), ``0``:
            whole patches.
        loader: ``"stream"`` (read a pack; another source is packed once into the cache:
            :func:`eoreps.data.pack_cache.packed_source`) or ``"memory"`` (the in-memory fast path).
        quick: shrink everything to seconds (tests, smoke runs).
        quick_keep: options ``quick`` leaves alone (those the user set, e.g. ``["epochs"]``).
        data_options: dataset loader options (:func:`eoreps.data.formats.open_dataset`, e.g. the GeoTIFF
            folder's ``split_ratios``, ``skip_nodata``); an automatic split is seeded by ``seed``.
    """

    method: str = opt("multimodal", help=f"One of: {', '.join(list_methods())}.")
    data: str = "simeo"
    modalities: list[str] = opt(factory=lambda: ["s2", "s1"], help="Comma-separated image modalities.")
    backbone: str = opt(
        "",
        help="cnn-tiny|cnn-small|cnn-base|timm:<name> (default: the method's: a ViT for mae, "
        "cnn-small for the others).",
    )
    backbone_kwargs: dict[str, Any] = opt(
        factory=dict,
        parse=functools.partial(parse_kwargs, what="--backbone-kwargs"),
        help="Backbone options KEY=VALUE,... (ViT default: img_size=the images' size,patch_size=4).",
    )
    method_kwargs: dict[str, Any] = opt(
        factory=dict,
        parse=functools.partial(parse_kwargs, what="--method-kwargs"),
        help="Method options KEY=VALUE,... e.g. temperature=0.1.",
    )
    epochs: int = opt(30, help="Passes over the training data.")
    batch_size: int = opt(256, help="Samples per step and process.")
    lr: float = opt(2e-3, help="Peak AdamW learning rate.")
    weight_decay: float = 1e-4
    max_samples: int | None = opt(None, help="Cap on training samples (0 = all).", none=0)
    precision: str = opt("auto", help=PRECISION_HELP)
    seed: int = 0
    out: str = "runs/pretrain"
    checkpoint_every: int = opt(50, help="Steps between checkpoints.")
    resume: bool = opt(False, help="Continue from OUT/checkpoints/last.ckpt.", flag="--resume")
    monitor_samples: int = 512
    knn: bool = opt(True, help="Online kNN accuracy on the validation split.", flag="--knn/--no-knn")
    knn_train_samples: int = 2000
    knn_val_samples: int = 500
    accelerator: str = opt("auto", help="auto, cpu, gpu.")
    devices: int | str = opt(1, help="Processes/devices per node (int or 'auto').", parse=parse_devices)
    num_nodes: int = opt(1, help="Nodes (multi-node DDP).")
    strategy: str = opt("auto", help="Lightning strategy: auto, ddp, ddp_spawn.")
    num_workers: int | str = opt(
        "auto",
        help="DataLoader worker processes streaming a pack, or 'auto': CPU training gets the cores its "
        "threads leave free (0 when they take all), accelerators cores - 1 (docs/data.md).",
        parse=parse_workers,
    )
    crop: int | None = opt(
        None,
        help="Random crop in px of the training patches (default: 32 for cnn-*, "
        "the ViT's img_size; 0 = whole patches).",
    )
    loader: str = opt("stream", help=LOADER_HELP)
    # Tile2Vec's options moved to method_kwargs; PretrainConfig(tile_size=16) still works (moved there)
    tile_size: InitVar[int | None] = None
    neighborhood: InitVar[int | None] = None
    num_scenes: InitVar[int | None] = None
    scene_size: InitVar[int | None] = None
    quick: bool = False
    quick_keep: list[str] = field(default_factory=list)
    data_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self, *moved: int | None) -> None:
        names = ("tile_size", "neighborhood", "num_scenes", "scene_size")
        self.method_kwargs.update({k: v for k, v in zip(names, moved, strict=True) if v is not None})
        # one vocabulary (eoreps.vocabulary): the short form is stored; training.build_run converts it
        self.precision = resolve_config(self, accelerator=self.accelerator)  # remembers an explicit choice

    def apply_quick(self, keep: Collection[str] = ()) -> list[str]:
        """``--quick``: shrink to seconds except the fields in ``keep`` (those the user gave); the shrinkage
        is applied by :meth:`resolved`. Returns what it changes."""
        self.quick, self.quick_keep = True, sorted(keep)
        return self.quick_changes()

    def quick_changes(self) -> list[str]:
        """What ``quick`` changes (``["epochs 30 -> 1", ...]``); empty without ``quick``."""
        from eoreps.quick import shrink

        return shrink(PretrainConfig(**asdict(self)), _QUICK, self.quick_keep) if self.quick else []

    def crop_px(self) -> int | None:
        """The random crop of streamed patches: ``crop``, or the backbone's default when unset; ``None`` =
        whole."""
        from eoreps.ssl.data import default_crop

        if self.crop is None:
            return default_crop(self.backbone, self.backbone_kwargs)
        return self.crop or None

    def source(self) -> tuple[str, dict[str, Any]]:
        """``(data, loader options)`` the run opens: with ``loader="stream"`` a pack (``data`` packed once
        into the cache unless it is one, its options applied then), else ``data`` and ``data_options``."""
        from eoreps.data.pack_cache import run_source

        return run_source(self)

    def resolved(self) -> PretrainConfig:
        """A copy with ``quick`` shrinkage and backbone defaults applied, validated."""
        from eoreps.ssl.methods import method_info

        info = method_info(self.method)
        c = PretrainConfig(**asdict(self))  # asdict copies the lists and dicts
        keep_request(self, c)  # "auto" stays auto in the record (the copy sees the resolved value)
        c.method = info.name  # the registered spelling (band_prediction -> band-prediction)
        if not c.backbone:
            c.backbone = info.cls.default_backbone
        if c.backbone.startswith("timm:vit") and not c.backbone_kwargs:
            c.backbone_kwargs = dict(DEFAULT_BACKBONE_KWARGS["timm:vit"])
        if c.quick:
            from eoreps.quick import shrink

            shrink(c, _QUICK, c.quick_keep)
        for name in ("epochs", "batch_size", "checkpoint_every"):
            if int(getattr(c, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(c, name)}")
        if c.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {c.lr}")
        if c.crop is not None and c.crop < 0:
            raise ConfigError(f"crop must be >= 0 px (0 = whole patches), got {c.crop}")
        check_loader(c.loader)
        _check_run_options(c)
        info.check_modalities(c.modalities)
        return c


def _check_run_options(c: PretrainConfig) -> None:
    """One-line errors for run options Lightning would reject with a traceback."""
    from lightning.pytorch.strategies import StrategyRegistry

    from eoreps.errors import unknown_name
    from eoreps.ssl.methods import check_method_kwargs
    from eoreps.tasks.fit_config import ACCELERATORS

    c.num_workers = parse_workers(c.num_workers)
    if c.max_samples is not None and c.max_samples < 1:
        raise ConfigError(f"max_samples must be >= 1 (or unset for all), got {c.max_samples}")
    if c.num_nodes < 1:
        raise ConfigError(f"num_nodes must be >= 1, got {c.num_nodes}")
    for kind, value, choices in (
        ("accelerator", c.accelerator, ACCELERATORS),  # precision: __post_init__
        ("strategy", c.strategy, ["auto", *StrategyRegistry.available_strategies()]),
    ):
        if value not in choices:
            raise unknown_name(kind, value, list(choices))
    check_method_kwargs(c.method, c.method_kwargs)


@dataclass
class PretrainResult:
    """What a run produced."""

    out: Path
    encoders: dict[str, Path]
    checkpoint: Path | None
    steps: int
    metrics: dict[str, Any]
    wall_time_s: float


def _world_size(cfg: PretrainConfig) -> int:
    import os

    for var in ("WORLD_SIZE", "SLURM_NTASKS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    devices = (
        cfg.devices
        if isinstance(cfg.devices, int)
        else (1 if str(cfg.devices) == "auto" else int(cfg.devices))
    )
    return max(1, devices) * max(1, cfg.num_nodes)


def build_data(cfg: PretrainConfig) -> tuple[MethodData, Any, Any]:
    """``(the method's data, monitor set, (knn_train, knn_val) or None)``; the method's registered
    ``build_data`` hook (:func:`eoreps.ssl.methods.register_method`) builds its training data."""
    from eoreps.errors import EoRepsError
    from eoreps.ssl.data import load_patches
    from eoreps.ssl.methods import method_info

    info = method_info(cfg.method)
    options, _ = info.split_kwargs(cfg.method_kwargs)
    md = info.build_data(cfg, options)
    patches = md.patches
    monitor = patches.subset(cfg.monitor_samples, seed=cfg.seed)
    knn = None
    if cfg.knn and patches.labels is not None:
        data, data_options = cfg.source()
        try:
            val = load_patches(
                data,
                cfg.modalities,
                "val",
                max_samples=cfg.knn_val_samples,
                seed=cfg.seed,
                options=data_options,
                crop=getattr(md.dataset, "crop", None),  # as the monitor's patches
            )
        except EoRepsError as e:  # a dataset without a validation split: no kNN monitor, say so
            import warnings

            warnings.warn(f"online kNN disabled: no validation split in {cfg.data} ({e})", stacklevel=2)
        else:
            if val.labels is not None:
                knn = (patches.subset(cfg.knn_train_samples, seed=cfg.seed + 1), val)
    return md, monitor, knn


def run_identity(cfg: PretrainConfig) -> dict[str, Any]:
    """What a checkpoint must share with a run that resumes from it."""
    return {"method": cfg.method, "backbone": cfg.backbone, "modalities": list(cfg.modalities)}


def _resume_point(cfg: PretrainConfig, last: Path) -> ResumePoint | None:
    """The checkpoint ``--resume`` continues from (checked), or ``None`` (no ``--resume``, or none yet)."""
    from eoreps.training import resume_point

    return resume_point(
        last,
        run_identity(cfg),
        "use another output folder or drop resume=True",
        wanted=cfg.resume,
        warn_missing=True,
    )


def run_pretrain(config: PretrainConfig, callbacks: list[Any] | None = None) -> PretrainResult:
    """Pretrain, checkpoint, monitor and export (see the module docstring).

    Args:
        config: the run's options.
        callbacks: extra Lightning callbacks (e.g. early stopping, custom logging).
    """
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from eoreps.checkpoints import checkpoint_step
    from eoreps.io import write_json
    from eoreps.precision import announce
    from eoreps.precision_probe import settle_run
    from eoreps.smoke import smoke_fields
    from eoreps.ssl.data import PretrainDataModule, StreamedPatches
    from eoreps.ssl.export import export_encoders
    from eoreps.ssl.methods import get_method, method_info
    from eoreps.ssl.monitor import SSLMonitor
    from eoreps.training import build_run

    cfg = config.resolved()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_dir = out / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    t0 = time.perf_counter()
    resume_at = _resume_point(cfg, last)
    md, monitor_data, knn = build_data(cfg)
    dataset, train, image_size = md.dataset, md.train, md.image_size
    stats = train.stats()
    world = _world_size(cfg)
    per_rank = math.ceil(len(dataset) / world)
    steps_per_epoch = per_rank // cfg.batch_size
    if steps_per_epoch < 1:
        raise ConfigError(
            f"{len(dataset)} training samples over {world} process(es) do not fill one batch of "
            f"{cfg.batch_size}; lower batch_size={cfg.batch_size}"
        )
    max_steps = cfg.epochs * steps_per_epoch
    if (
        cfg.backbone.startswith("timm:vit") and not config.backbone_kwargs
    ):  # the default ViT: sized for the data
        patch = cfg.backbone_kwargs.get("patch_size", 4)
        if all(s % patch == 0 for s in image_size):
            cfg.backbone_kwargs["img_size"] = (
                list(image_size) if image_size[0] != image_size[1] else image_size[0]
            )
    method_cls, method_kwargs = (
        get_method(cfg.method),
        method_info(cfg.method).split_kwargs(cfg.method_kwargs)[1],
    )
    method = method_cls(
        modalities=cfg.modalities, in_chans=train.in_chans, stats=stats.to_dict(), backbone=cfg.backbone,
        backbone_kwargs=cfg.backbone_kwargs, image_size=image_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
        max_steps=max_steps, **method_kwargs)
    # auto on a bf16 CPU: time this method's training step in both precisions (one process; with several
    # the flags decide, so every process trains in the same precision); a resume keeps the stored choice
    precision = settle_run(cfg, out, resume_at is not None, lambda: method.precision_workload(cfg.batch_size),
                           cfg.accelerator, measure=world == 1)
    announce(precision)
    monitor = SSLMonitor(monitor_data, *(knn or (None, None)))
    ckpt = ModelCheckpoint(dirpath=ckpt_dir, filename="{step}", every_n_train_steps=cfg.checkpoint_every,
                           save_last=True, save_top_k=1, monitor=None)
    run = build_run(
        out,
        run_identity(cfg),
        resume=resume_at,
        checkpoint=ckpt,
        callbacks=[monitor, *(callbacks or [])],
        final=last,
        t0=t0,
        max_steps=max_steps,
        max_epochs=-1,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy=cfg.strategy,
        precision=cfg.precision,
        log_every_n_steps=max(1, min(50, steps_per_epoch)),
        gradient_clip_val=GRADIENT_CLIP,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # PretrainDataModule shards with its resumable sampler
    )
    trainer = run.trainer
    # resolved here (in the parent under ddp_spawn, so pretrain.json has it) and kept by a resume: LitData
    # resumes a stream as the uninterrupted epoch only with the checkpoint's number of workers
    if isinstance(dataset, StreamedPatches):
        workers = settle_workers(cfg.num_workers, out, resume_at is not None, trainer)
    else:  # in memory "auto" is 0: a batch is one index_select
        workers = 0 if cfg.num_workers == AUTO else int(cfg.num_workers)
    train.info["loader_workers"] = workers
    dm = PretrainDataModule(dataset, cfg.batch_size, workers, cfg.seed, record=out / LOADER_FILE)
    run.fit(method, datamodule=dm)
    wall = run.elapsed()
    # under ddp_spawn this (parent) trainer never stepped: the children's final checkpoint has the count
    steps = int(trainer.global_step) or checkpoint_step(last) or 0
    metrics: dict[str, Any] = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    last_row = monitor.history[-1] if monitor.history else {}
    metrics.update({k: v for k, v in last_row.items() if isinstance(v, float)})
    encoders: dict[str, Path] = {}
    if trainer.is_global_zero:
        card = {"method": cfg.method, "data": train.info, "epochs": cfg.epochs, "steps": steps,
                "metrics": metrics, "pretrain_modalities": cfg.modalities, "seed": cfg.seed,
                "precision": precision,
                "config": {k: v for k, v in asdict(cfg).items() if k not in ("out",)}}
        encoders = export_encoders(method, out, card)
        write_json(
            out / "pretrain.json",
            {
                "config": asdict(cfg),
                "steps": steps,
                "max_steps": max_steps,
                "steps_per_epoch": steps_per_epoch,
                "world_size": world,
                "wall_time_s": wall,
                "metrics": metrics,
                "monitor_history": monitor.history,
                "encoders": {k: str(p) for k, p in encoders.items()},
                "checkpoint": str(last) if last.is_file() else None,
                "synthetic_data": bool(train.info.get("synthetic")),
                "loader": train.info.get("loader", cfg.loader),
                "crop": train.info.get("crop"),
                "precision": precision,
                "data": train.info,
                **smoke_fields(cfg.quick, f"{steps} steps"),
            },
        )
    return PretrainResult(out, encoders, last if last.is_file() else None, steps, metrics, wall)
