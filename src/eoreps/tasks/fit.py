"""``fit(FitConfig)``: build data, model and a Lightning trainer, train, evaluate, write results.

The one training entry point behind ``eoreps fit`` and every experiment. Writes into ``cfg.out``:

* ``logs/metrics.csv`` (Lightning CSVLogger: per-epoch train/val losses, task weights, metrics);
* ``checkpoints/best.ckpt`` and ``last.ckpt`` (when ``checkpoints``; written atomically, see
  :mod:`eoreps.checkpoints`). A rerun with the same ``out`` resumes from ``last.ckpt`` (checked to come
  from the same task, backbone, modalities and fusion) and keeps the earlier ``metrics.csv`` rows;
  ``seconds`` in ``results.json`` counts the training time of all parts;
* ``results.json``: the config, what the data was (``data``: class names, mask classes, how the splits
  were drawn, samples per split, samples left out as no-data), the evaluation metrics per split,
  epochs and seconds.

Data: ``"simeo"`` (synthetic; ``task="multitask"`` uses the power-plant set: plume segmentation +
power regression + fuel classification) or a dataset path (:func:`eoreps.data.formats.open_dataset`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from eoreps.data.datasets.base import data_record, task_classes
from eoreps.errors import ConfigError, DataError, unknown_name
from eoreps.io import write_json
from eoreps.models.fusion import input_specs
from eoreps.tasks.data import EODataModule, regression_stats, require_target

# the config lives in a module without torch/Lightning, so the CLI can build its options cheaply
from eoreps.tasks.fit_config import ACCELERATORS, FIT_TASKS, PRECISIONS, FitConfig  # noqa: E402, F401
from eoreps.tasks.noise import NoisyLabels, noisy_keys
from eoreps.tasks.spec import TaskSpec
from eoreps.tasks.supervised import SupervisedModule, evaluate
from eoreps.tasks.weak_labels import WeakLabels


@dataclass
class FitResult:
    """What :func:`fit` returns: the trained module, its data, metrics per split, timing."""

    module: SupervisedModule
    datamodule: EODataModule
    metrics: dict[str, dict[str, float]]
    epochs: int
    seconds: float
    out: Path


# ----------------------------------------------------------------------------------------- data
def _open(cfg: FitConfig, split: str) -> Any:
    mods = list(cfg.modalities)
    if cfg.data == "simeo":
        if cfg.data_options:
            raise ConfigError(
                f"dataset options {sorted(cfg.data_options)} apply to dataset folders, not data=simeo"
            )
        from eoreps.data.datasets.simeo import SimEODataset, SimEOPowerPlants

        if cfg.task == "multitask":  # power-plant scenes, generated apart from the patches: not packed
            return SimEOPowerPlants(split=split, modalities=mods, n=cfg.simeo_n)
        if cfg.loader == "memory":
            return SimEODataset(split=split, modalities=mods, n=cfg.simeo_n,
                                task="multi" if cfg.task == "multilabel" else "single")
    from eoreps.data.formats import open_dataset
    from eoreps.data.pack_cache import run_source

    # SimEO's multi-label view is a loader option (packed apart); its single-label one is the default pack
    simeo = ({"task": "multi"} if cfg.task == "multilabel" else {}) if cfg.data == "simeo" else None
    data, options = run_source(cfg, simeo, simeo_n=cfg.simeo_n)
    return open_dataset(data, split=split, modalities=mods, run_seed=cfg.seed, **options)


def _cap(ds: Any, n: int | None, seed: int) -> Any:
    if n is None or len(ds) <= n:
        return ds
    from torch.utils.data import Subset

    idx = np.sort(np.random.default_rng(seed).choice(len(ds), n, replace=False))
    sub = Subset(ds, idx.tolist())
    for attr in ("classes", "mask_classes", "task", "synthetic", "band_names", "modalities"):
        if hasattr(ds, attr):
            setattr(sub, attr, getattr(ds, attr))
    # tells cached band statistics of different subsets apart (eoreps.data.stats.dataset_fingerprint)
    sub.cache_key = (
        f"{type(ds).__name__}:{getattr(ds, 'root', '')}:{getattr(ds, 'split', '')}:{len(ds)}:{n}:{seed}"
    )
    return sub


def _tasks(cfg: FitConfig, train: Any, train_idx: np.ndarray | None) -> list[TaskSpec]:
    require_target(train, cfg.task, cfg.data)
    classes = list(task_classes(train, cfg.task))
    if cfg.task == "multitask":
        if cfg.data != "simeo":
            raise ConfigError("task=multitask needs the SimEO power-plant data (data=simeo)")
        mean, std = regression_stats(train, "target", train_idx)
        specs = [
            TaskSpec("segment", name="plume", num_classes=2, positive_class=1),
            TaskSpec(
                "regress", name="power", target_mean=mean, target_std=std, heteroscedastic=cfg.heteroscedastic
            ),
            TaskSpec("classify", name="fuel", num_classes=len(classes)),
        ]
        if cfg.tasks:
            names = [t.name for t in specs]
            for t in cfg.tasks:
                if t not in names:
                    raise unknown_name("multitask head", t, names)
            specs = [t for t in specs if t.name in cfg.tasks]
        return specs
    if cfg.task == "regress":
        mean, std = regression_stats(train, "target", train_idx)
        return [TaskSpec("regress", heteroscedastic=cfg.heteroscedastic, target_mean=mean, target_std=std)]
    if cfg.heteroscedastic:
        raise ConfigError("heteroscedastic=True applies to task=regress only")
    if len(classes) < 2:
        raise DataError(
            f"{cfg.data}: the dataset declares {len(classes)} classes; a {cfg.task} task needs >= 2"
        )
    return [
        TaskSpec(cfg.task, num_classes=len(classes), supervision=cfg.supervision, pooling=cfg.cam_pooling)
    ]


def _training_labels(cfg: FitConfig, train: Any, val: Any) -> tuple[Any, Any]:
    """Label noise on the training split, then the weak labels of ``cfg.supervision`` on train and val."""
    k = len(task_classes(train, cfg.task))
    if cfg.label_noise > 0:
        train = NoisyLabels(
            train, cfg.label_noise, cfg.noise_kind, k, noisy_keys(cfg.task, cfg.supervision), cfg.seed
        )
    if cfg.supervision != "full":
        train = WeakLabels(train, cfg.supervision, k, cfg.points_per_class, cfg.seed, salt=0)
        val = WeakLabels(val, cfg.supervision, k, cfg.points_per_class, cfg.seed, salt=1)
    return train, val


def build(cfg: FitConfig) -> tuple[SupervisedModule, EODataModule]:
    """The module and data module of ``cfg`` (untrained)."""
    opened = {s: _open(cfg, s) for s in dict.fromkeys(["train", "val", *cfg.eval_splits])}
    train = _cap(opened["train"], cfg.max_train, cfg.seed)
    val = _cap(opened["val"], cfg.max_eval, cfg.seed)
    evals = {s: _cap(opened[s], cfg.max_eval, cfg.seed) for s in cfg.eval_splits if s != "val"}
    train, val = _training_labels(cfg, train, val)
    train_idx = None
    if cfg.label_fraction < 1:
        from eoreps.data.splits import label_fraction_indices

        labels = train.label_matrix() if hasattr(train, "label_matrix") else None
        if labels is None:
            raise ConfigError("label_fraction < 1 needs a dataset with label_matrix()")
        train_idx = label_fraction_indices(labels, [cfg.label_fraction], seed=cfg.seed)[cfg.label_fraction]
    dm = EODataModule(
        train,
        val,
        cfg.modalities,
        evals=evals,
        batch_size=cfg.batch_size,
        train_indices=train_idx,
        num_workers=cfg.num_workers,
        seed=cfg.seed,
    )
    dm.data_info = data_record(opened)
    example = dm.example()
    specs = input_specs(example, cfg.modalities)
    image = [example[m] for m in cfg.modalities if torch.as_tensor(example[m]).dim() == 3]
    grid = (
        tuple(example["mask"].shape[-2:])
        if "mask" in example
        else tuple(image[0].shape[-2:])
        if image
        else (32, 32)
    )
    tasks = _tasks(cfg, train, train_idx)
    module = SupervisedModule(
        tasks,
        specs,
        backbone=cfg.backbone,
        fusion=cfg.fusion,
        grid_size=grid,
        share_weights=cfg.share_weights,
        weighting=cfg.weighting if len(tasks) > 1 else "fixed",
        task_weights=cfg.task_weights if len(tasks) > 1 else None,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        dropout=cfg.dropout,
        hidden=cfg.hidden,
        head_pooling=cfg.head_pooling,
        channels_last=cfg.channels_last,
    )
    return module, dm


# -------------------------------------------------------------------------------------- training
@contextlib.contextmanager
def _quiet_lightning(quiet: bool) -> Iterator[None]:
    """Silence Lightning's info lines (GPU available, tips) while ``quiet``."""
    if not quiet:
        yield
        return
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, lvl in zip(loggers, levels, strict=True):
            lg.setLevel(lvl)


def fit(cfg: FitConfig, quiet: bool = False) -> FitResult:
    """Train ``cfg``, evaluate on ``cfg.eval_splits`` (best checkpoint), write ``results.json``."""
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from eoreps.precision import announce
    from eoreps.precision_probe import settle_run
    from eoreps.training import build_run, resume_point

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    last = out / "checkpoints" / "last.ckpt"
    identity = {
        "task": cfg.task,
        "backbone": cfg.backbone,
        "modalities": list(cfg.modalities),
        "fusion": cfg.fusion,
    }
    resume_at = resume_point(
        last, identity, f"use another output folder or delete {last.parent}", wanted=cfg.checkpoints
    )
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    module, dm = build(cfg)
    # auto on a bf16 CPU: time this model in both precisions (one process, as pretrain counts: devices 1
    # or "auto", which is one process wherever the probe applies, the CPU; with several the flags decide);
    # a resume keeps the stored choice
    one_process = str(cfg.devices) in ("1", "auto")
    precision = settle_run(cfg, out, resume_at is not None,
                           lambda: module.precision_workload(dm.example(), cfg.batch_size), cfg.accelerator,
                           measure=one_process)
    if not quiet:
        announce(precision)
    ckpt = None
    if cfg.checkpoints:
        ckpt = ModelCheckpoint(dirpath=out / "checkpoints", filename="best", monitor="val/loss", mode="min",
                               save_last=True)
    with _quiet_lightning(quiet):
        run = build_run(
            out,
            identity,
            resume=resume_at,
            checkpoint=ckpt,
            quiet=quiet,
            callbacks=[EarlyStopping("val/loss", patience=cfg.patience, mode="min")],
            max_epochs=cfg.epochs,
            accelerator=cfg.accelerator,
            devices=cfg.devices,
            precision=cfg.precision,
            use_distributed_sampler=False,  # EODataModule's resumable training sampler shards itself
            enable_checkpointing=cfg.checkpoints,
            log_every_n_steps=1,
            num_sanity_val_steps=0,
            deterministic=False,
        )
    trainer = run.trainer
    with warnings.catch_warnings(), _quiet_lightning(quiet):
        warnings.filterwarnings(
            "ignore", message=".*(does not have many workers|LeafSpec|isinstance\\(treespec).*"
        )
        run.fit(module, datamodule=dm)
    seconds = run.elapsed()
    if ckpt is not None and ckpt.best_model_path:
        state = torch.load(ckpt.best_model_path, map_location="cpu", weights_only=False)["state_dict"]
        module.load_state_dict(state)
    module.to("cpu")
    metrics = {s: evaluate(module, dm.eval_dataloader(s)) for s in cfg.eval_splits}
    write_json(
        out / "results.json",
        {
            "config": dataclasses.asdict(cfg),
            "data": dm.data_info,
            "metrics": metrics,
            "epochs": int(trainer.current_epoch),
            "seconds": seconds,
            "precision": precision,
        },
    )
    return FitResult(module, dm, metrics, int(trainer.current_epoch), seconds, out)
