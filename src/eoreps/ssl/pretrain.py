"""The pretraining runner behind ``eoreps pretrain``: data, method, Trainer, checkpoints, export.

``run_pretrain(PretrainConfig(method="multimodal", modalities=["s2", "s1"]))``:

1. holds the training split of ``data`` in memory (Tile2Vec: large scenes) and computes per-band
   statistics (stored in checkpoints and cards);
2. builds the method (:func:`eoreps.ssl.methods.get_method`) and a Lightning ``Trainer`` that stops
   after ``max_steps = epochs * steps_per_epoch`` optimisation steps (a step budget, so a resumed run
   ends after the same total number of steps wherever it was killed);
3. checkpoints ``OUT/checkpoints/last.ckpt`` every ``checkpoint_every`` steps (mid-epoch included;
   Lightning writes through an fsspec transaction, so a kill never leaves a torn file);
   ``resume=True`` continues from it;
4. monitors collapse (and kNN accuracy) each epoch (:class:`eoreps.ssl.monitor.SSLMonitor`);
5. exports the encoders with their cards (:func:`eoreps.ssl.export.export_encoders`) and writes
   ``OUT/pretrain.json``.

Multi-process: ``devices`` / ``num_nodes`` / ``strategy`` go to Lightning (``strategy="ddp"`` under
``torchrun`` or SLURM, ``"ddp_spawn"`` for local CPU processes); negatives of the contrastive methods
are gathered across processes. See ``docs/ssl.md``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eoreps.errors import ConfigError

DEFAULT_BACKBONE_KWARGS = {"timm:vit": {"img_size": 32, "patch_size": 4}}


@dataclass
class PretrainConfig:
    """Options of one pretraining run (the ``eoreps pretrain`` options).

    Attributes:
        method: ``simclr``, ``multimodal``, ``moco``, ``byol``, ``dino``, ``mae`` or ``tile2vec``.
        data: ``"simeo"`` or a dataset path.
        modalities: image modalities (multimodal: one encoder each; others: stacked channels).
        backbone: backbone name (``cnn-small``, ``timm:resnet18``, ``timm:vit_tiny_patch16_224``, ...).
        backbone_kwargs: backbone options (ViTs default to ``img_size=32, patch_size=4``).
        method_kwargs: method options (e.g. ``{"temperature": 0.1}``, see each method's class).
        epochs: passes over the training data (sets the step budget).
        batch_size: samples per step and process.
        lr, weight_decay: AdamW settings (linear warmup, cosine decay).
        max_samples: cap on training samples (all when ``None``).
        precision: Lightning precision, ``"32-true"`` or ``"bf16-mixed"`` (fast for ViTs on AMX CPUs).
        seed: seed of everything.
        out: output folder.
        checkpoint_every: steps between checkpoints (``last.ckpt``).
        resume: continue from ``out/checkpoints/last.ckpt``.
        monitor_samples: samples embedded for the collapse statistics.
        knn: online kNN accuracy on the validation split each epoch (labelled data only).
        knn_train_samples, knn_val_samples: sizes of the kNN bank and validation set.
        accelerator, devices, num_nodes, strategy: Lightning distribution settings.
        num_workers: DataLoader processes (0: batches are an index_select on in-memory data).
        tile_size, neighborhood, num_scenes, scene_size: Tile2Vec triplet sampling.
        quick: shrink everything to seconds (tests, smoke runs).
    """

    method: str = "multimodal"
    data: str = "simeo"
    modalities: list[str] = field(default_factory=lambda: ["s2", "s1"])
    backbone: str = "cnn-small"
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    method_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 30
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    max_samples: int | None = None
    precision: str = "32-true"
    seed: int = 0
    out: str = "runs/pretrain"
    checkpoint_every: int = 50
    resume: bool = False
    monitor_samples: int = 512
    knn: bool = True
    knn_train_samples: int = 2000
    knn_val_samples: int = 500
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    num_workers: int = 0
    tile_size: int = 32
    neighborhood: int = 16
    num_scenes: int = 16
    scene_size: int = 256
    quick: bool = False

    def resolved(self) -> PretrainConfig:
        """A copy with ``quick`` shrinkage and backbone defaults applied, validated."""
        from eoreps.ssl.methods import METHODS

        if self.method not in METHODS:
            from eoreps.errors import unknown_name

            raise unknown_name("pretraining method", self.method, list(METHODS))
        c = PretrainConfig(**{**asdict(self), "modalities": list(self.modalities),
                              "backbone_kwargs": dict(self.backbone_kwargs), "method_kwargs": dict(self.method_kwargs)})
        if c.backbone.startswith("timm:vit") and not c.backbone_kwargs:
            c.backbone_kwargs = dict(DEFAULT_BACKBONE_KWARGS["timm:vit"])
        if c.quick:
            c.epochs = min(c.epochs, 1)
            c.batch_size = min(c.batch_size, 32)
            c.max_samples = min(c.max_samples or 128, 128)
            c.monitor_samples = min(c.monitor_samples, 64)
            c.knn_train_samples, c.knn_val_samples = min(c.knn_train_samples, 128), min(c.knn_val_samples, 64)
            c.num_scenes, c.scene_size = min(c.num_scenes, 4), min(c.scene_size, 96)
            c.checkpoint_every = min(c.checkpoint_every, 2)
        for name in ("epochs", "batch_size", "checkpoint_every"):
            if int(getattr(c, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(c, name)}")
        if c.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {c.lr}")
        if c.method == "multimodal" and len(c.modalities) < 2:
            raise ConfigError(f"multimodal pretraining needs two or more modalities, got {c.modalities}; "
                              "e.g. --modalities s2,s1")
        return c


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
    devices = cfg.devices if isinstance(cfg.devices, int) else (1 if str(cfg.devices) == "auto" else int(cfg.devices))
    return max(1, devices) * max(1, cfg.num_nodes)


def build_data(cfg: PretrainConfig) -> tuple[Any, Any, Any, Any]:
    """``(training dataset, training PretrainData, monitor set, (knn_train, knn_val) or None)``."""
    from eoreps.ssl.data import BatchDataset, TripletDataset, load_patches, load_scenes

    if cfg.method == "tile2vec":
        scenes = load_scenes(cfg.data, cfg.modalities, cfg.num_scenes, cfg.scene_size, cfg.seed)
        train = scenes
        patches = load_patches(cfg.data, cfg.modalities, "train", max_samples=max(cfg.monitor_samples,
                               cfg.knn_train_samples if cfg.knn else 0), seed=cfg.seed)
        length = None
        if cfg.max_samples is not None:
            length = max(cfg.batch_size, cfg.max_samples)
        dataset: Any = TripletDataset(scenes, tile=cfg.tile_size, neighborhood=cfg.neighborhood, length=length,
                                      seed=cfg.seed)
    else:
        train = load_patches(cfg.data, cfg.modalities, "train", max_samples=cfg.max_samples, seed=cfg.seed)
        patches = train
        dataset = BatchDataset(train)
    monitor = patches.subset(cfg.monitor_samples, seed=cfg.seed)
    knn = None
    if cfg.knn and patches.labels is not None:
        try:
            val = load_patches(cfg.data, cfg.modalities, "val", max_samples=cfg.knn_val_samples, seed=cfg.seed)
        except Exception as e:  # a dataset without a validation split: no kNN monitor, say so
            import warnings

            warnings.warn(f"online kNN disabled: no validation split in {cfg.data} ({e})", stacklevel=2)
        else:
            if val.labels is not None:
                knn = (patches.subset(cfg.knn_train_samples, seed=cfg.seed + 1), val)
    return dataset, train, monitor, knn


def run_pretrain(config: PretrainConfig, callbacks: list[Any] | None = None) -> PretrainResult:
    """Pretrain, checkpoint, monitor and export (see the module docstring).

    Args:
        config: the run's options.
        callbacks: extra Lightning callbacks (e.g. early stopping, custom logging).
    """
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from eoreps.io import write_json
    from eoreps.progress import progress_enabled
    from eoreps.ssl.data import PretrainDataModule
    from eoreps.ssl.export import export_encoders
    from eoreps.ssl.methods import get_method
    from eoreps.ssl.monitor import SSLMonitor

    cfg = config.resolved()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_dir = out / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    t0 = time.perf_counter()
    dataset, train, monitor_data, knn = build_data(cfg)
    stats = train.stats()
    world = _world_size(cfg)
    per_rank = math.ceil(len(dataset) / world)
    steps_per_epoch = per_rank // cfg.batch_size
    if steps_per_epoch < 1:
        raise ConfigError(f"{len(dataset)} training samples over {world} process(es) do not fill one batch of "
                          f"{cfg.batch_size}; lower --batch-size")
    max_steps = cfg.epochs * steps_per_epoch
    method = get_method(cfg.method)(
        modalities=cfg.modalities, in_chans=train.in_chans, stats=stats.to_dict(), backbone=cfg.backbone,
        backbone_kwargs=cfg.backbone_kwargs, image_size=(cfg.tile_size,) * 2 if cfg.method == "tile2vec"
        else train.image_size, lr=cfg.lr, weight_decay=cfg.weight_decay, max_steps=max_steps, **cfg.method_kwargs)
    monitor = SSLMonitor(monitor_data, *(knn or (None, None)))
    ckpt = ModelCheckpoint(dirpath=ckpt_dir, filename="{step}", every_n_train_steps=cfg.checkpoint_every,
                           save_last=True, save_top_k=1, monitor=None)
    trainer = L.Trainer(
        max_steps=max_steps, max_epochs=-1, accelerator=cfg.accelerator, devices=cfg.devices,
        num_nodes=cfg.num_nodes, strategy=cfg.strategy, precision=cfg.precision,  # type: ignore[arg-type]
        callbacks=[ckpt, monitor, *(callbacks or [])], logger=CSVLogger(str(out), name="logs", version=""),
        log_every_n_steps=max(1, min(50, steps_per_epoch)), enable_progress_bar=progress_enabled(),
        enable_model_summary=False, gradient_clip_val=3.0, num_sanity_val_steps=0,
    )
    resume_from = None
    if cfg.resume:
        if last.is_file():
            resume_from = str(last)
        else:
            import warnings

            warnings.warn(f"--resume: no checkpoint at {last}; starting from scratch", stacklevel=2)
    dm = PretrainDataModule(dataset, cfg.batch_size, cfg.num_workers, cfg.seed)
    trainer.fit(method, datamodule=dm, ckpt_path=resume_from)
    wall = time.perf_counter() - t0
    metrics: dict[str, Any] = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    last_row = monitor.history[-1] if monitor.history else {}
    metrics.update({k: v for k, v in last_row.items() if isinstance(v, float)})
    encoders: dict[str, Path] = {}
    if trainer.is_global_zero:
        card = {"method": cfg.method, "data": train.info, "epochs": cfg.epochs, "steps": int(trainer.global_step),
                "metrics": metrics, "pretrain_modalities": cfg.modalities, "seed": cfg.seed,
                "config": {k: v for k, v in asdict(cfg).items() if k not in ("out",)}}
        encoders = export_encoders(method, out, card)
        write_json(out / "pretrain.json", {
            "config": asdict(cfg), "steps": int(trainer.global_step), "max_steps": max_steps,
            "steps_per_epoch": steps_per_epoch, "world_size": world, "wall_time_s": wall, "metrics": metrics,
            "monitor_history": monitor.history, "encoders": {k: str(p) for k, p in encoders.items()},
            "checkpoint": str(last) if last.is_file() else None, "synthetic_data": bool(train.info.get("synthetic")),
        })
    return PretrainResult(out, encoders, last if last.is_file() else None, int(trainer.global_step), metrics, wall)
