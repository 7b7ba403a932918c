"""``FitConfig``: everything ``eoreps fit`` needs, and the source of its options, ``--help`` and YAML keys
(:mod:`eoreps.cli_config`). Kept apart from :mod:`eoreps.tasks.fit` (which re-exports it) so that reading the
config imports neither torch nor Lightning.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from eoreps.cli_config import opt, parse_devices
from eoreps.data.pack_cache import LOADER_HELP, check_loader
from eoreps.errors import ConfigError, unknown_name
from eoreps.precision import resolve_config
from eoreps.vocabulary import PRECISION_HELP, normalize_task

FIT_TASKS = ("classify", "multilabel", "segment", "regress", "multitask")
PRECISIONS = (
    "fp32",
    "bf16",
    "fp16",
    "fp64",
)  # what FitConfig.precision holds (eoreps.vocabulary.run_precision)
ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "auto")  # Lightning's, less those needing extra packages (tpu)


@dataclass
class FitConfig:
    """Everything ``eoreps fit`` needs (YAML keys = these names).

    Attributes:
        task: ``classify`` | ``multilabel`` | ``segment`` | ``regress`` | ``multitask``.
        modalities: input modality names (any subset the data has).
        fusion: ``early`` | ``late``; share_weights: one backbone for all image modalities (late).
        backbone: registry name (``cnn-small``, ``timm:resnet18`` ...).
        data: ``"simeo"`` or a dataset path; simeo_n: SimEO patches to generate (None: default).
        epochs, batch_size, lr, weight_decay, dropout, hidden: optimisation and head settings.
        heteroscedastic: regression predicts mean and log-variance (Gaussian NLL).
        weighting, task_weights: multi-task loss weighting (``fixed`` weights per task).
        tasks: for ``multitask``, the heads to train (``plume``, ``power``, ``fuel``; default all).
        label_fraction: train on this stratified fraction of the training labels.
        max_train, max_eval: cap on samples per split (quick runs).
        eval_splits: splits evaluated after training (``test``, ``shifted``, ``val``).
        accelerator, devices, precision: Lightning trainer settings (precision ``auto`` (bf16 where the
            device computes it natively and, on a CPU, a timed step is faster, else fp32:
            :mod:`eoreps.precision_probe`), ``fp32``,
            ``bf16``, ``fp16``; Lightning's spellings are accepted; stored resolved, in the short form).
        patience: early-stopping patience in epochs on ``val/loss``; checkpoints: write checkpoints.
        channels_last: channels-last memory format.
        supervision: ``segment`` only: ``full`` masks, ``image`` labels (pooled class activation map,
            ``cam_pooling`` ``lse`` | ``gap``) or ``points`` (``points_per_class`` labelled pixels per class
            and patch); see :mod:`eoreps.tasks.weak_labels`. Validation uses the same kind of labels.
        label_noise, noise_kind: corrupt this fraction of the *training* labels, ``uniform`` or ``class``
            (:mod:`eoreps.tasks.noise`).
        data_options: options of the dataset loader (:func:`eoreps.data.formats.open_dataset`), e.g. the
            GeoTIFF folder's ``split_ratios``, ``mask_classes``, ``skip_nodata``; the automatic split of a
            folder without a split column is seeded by ``seed`` unless ``split_seed`` is given.
        head_pooling: ``avg`` (global average pooling) or ``attention`` (a learned attention pooling per
            image-level head, :class:`eoreps.models.heads.AttentionPool`).
        seed, out, num_workers: as named.
        loader: ``stream`` (read the splits from a pack; another source, SimEO included, is packed once into
            the cache: :func:`eoreps.data.pack_cache.run_source`) or ``memory`` (open the source directly;
            SimEO's arrays in memory). The SimEO power-plant data of ``task=multitask`` is always in memory.
    """

    task: str = opt("classify", help="classify | multilabel | segment | regress | multitask.")
    modalities: list[str] = opt(factory=lambda: ["s2"], help="Comma-separated inputs, e.g. s2,s1,season.")
    fusion: str = opt("early", help="early | late.")
    share_weights: bool = opt(False, help="Late fusion: one backbone for all images.", flag="--share-weights")
    backbone: str = opt("cnn-small", help="cnn-small, cnn-tiny, timm:resnet18, ...")
    data: str = "simeo"
    simeo_n: int | None = None
    epochs: int = opt(15, help="Maximum epochs (early stopping on val loss).")
    batch_size: int = opt(64, help="Samples per step.")
    lr: float = opt(2e-3, help="AdamW learning rate (cosine schedule).")
    weight_decay: float = opt(1e-4, help="AdamW weight decay.")
    dropout: float = opt(0.0, help="Dropout in the heads (MC dropout).")
    hidden: int | None = None
    heteroscedastic: bool = opt(
        False, help="Regression: predict mean and variance.", flag="--heteroscedastic"
    )
    weighting: str = opt("fixed", help="Multitask: fixed | uncertainty | dwa | gradnorm.")
    task_weights: list[float] | None = opt(None, help="Fixed weights, e.g. 0.15,0.7,0.15.", none="")
    tasks: list[str] | None = None
    label_fraction: float = opt(1.0, help="Train on this fraction of labels.")
    max_train: int | None = opt(None, help="Cap on training samples (0 = all).", none=0)
    max_eval: int | None = None
    eval_splits: list[str] = opt(factory=lambda: ["test"], help="Splits evaluated at the end.")
    accelerator: str = opt("cpu", help="cpu | gpu | auto.")
    devices: int | str = opt(1, help="Number of devices or 'auto'.", parse=parse_devices)
    precision: str = opt("auto", help=PRECISION_HELP)
    patience: int = opt(5, help="Early-stopping patience (epochs).")
    checkpoints: bool = True
    channels_last: bool = opt(False, help="Channels-last memory format.", flag="--channels-last")
    seed: int = 0
    out: str = "runs/fit"
    num_workers: int = opt(0, help="Data loader processes.")
    supervision: str = opt("full", help="Segment: full | image | points (weak labels).")
    points_per_class: int = opt(1, help="--supervision points: pixels per class.")
    cam_pooling: str = opt("lse", help="--supervision image: lse | gap.")
    label_noise: float = opt(0.0, help="Corrupt this fraction of training labels.")
    noise_kind: str = opt("uniform", help="uniform | class (label noise).")
    head_pooling: str = opt("avg", help="avg | attention: how image-level heads pool the feature map.")
    data_options: dict[str, Any] = field(default_factory=dict)
    loader: str = opt("stream", help=LOADER_HELP)

    def apply_quick(self, keep: Collection[str] = ()) -> list[str]:
        """``--quick``: shrink to seconds (one epoch, 64 samples, ``cnn-tiny``) except the fields in ``keep``
        (those the user gave); returns what changed (:func:`eoreps.quick.shrink`)."""
        from eoreps.quick import shrink

        small: dict[str, Any] = {
            "epochs": 1,
            "max_train": 64,
            "max_eval": 64,
            "batch_size": 32,
            "backbone": "cnn-tiny",
        }
        if self.data == "simeo":
            small["simeo_n"] = 400 if self.task != "multitask" else 120
        return shrink(self, small, keep=keep)

    def __post_init__(self) -> None:
        from eoreps.models.fusion import FUSIONS  # here: importing this module stays free of torch
        from eoreps.tasks.cam import POOLINGS
        from eoreps.tasks.noise import check_noise
        from eoreps.tasks.weak_labels import check_supervision
        from eoreps.tasks.weighting import WEIGHTINGS

        self.task = normalize_task(self.task, FIT_TASKS)
        check_loader(self.loader)
        if self.fusion not in FUSIONS:
            raise unknown_name("fusion", self.fusion, FUSIONS)
        if self.weighting not in WEIGHTINGS:
            raise unknown_name("task weighting", self.weighting, WEIGHTINGS)
        # one vocabulary (eoreps.vocabulary): the short form is stored; Lightning's spelling only builds the
        # Trainer
        self.precision = resolve_config(self, accelerator=self.accelerator)  # remembers an explicit choice
        if isinstance(self.modalities, str):
            self.modalities = [m.strip() for m in self.modalities.split(",") if m.strip()]
        if not self.modalities:
            raise ConfigError("modalities=[]: give at least one input modality, e.g. ['s2', 's1']")
        if not 0 < self.label_fraction <= 1:
            raise ConfigError(f"label_fraction={self.label_fraction} must be in (0, 1]")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"epochs={self.epochs}, batch_size={self.batch_size}: both must be >= 1")
        for name, low in (("seed", 0), ("num_workers", 0), ("patience", 0), ("max_train", 1)):
            value = getattr(self, name)
            if value is not None and value < low:
                raise ConfigError(f"{name}={value} must be >= {low}")
        if not (self.lr > 0 and self.weight_decay >= 0 and 0 <= self.dropout < 1):
            raise ConfigError(
                f"lr={self.lr}, weight_decay={self.weight_decay}, dropout={self.dropout}: need lr > 0, "
                "weight_decay >= 0 and dropout in [0, 1)"
            )
        if self.accelerator not in ACCELERATORS:
            raise unknown_name("accelerator", self.accelerator, ACCELERATORS)
        if check_supervision(self.supervision) != "full" and self.task != "segment":
            raise ConfigError(
                f"supervision={self.supervision} applies to task=segment only (got task={self.task})"
            )
        if self.points_per_class < 1:
            raise ConfigError(
                f"points_per_class={self.points_per_class}: need at least one labelled pixel per class"
            )
        if self.cam_pooling not in POOLINGS:
            raise unknown_name("CAM pooling", self.cam_pooling, POOLINGS)
        check_noise(self.label_noise, self.noise_kind)
        from eoreps.tasks.multitask import HEAD_POOLINGS

        if self.head_pooling not in HEAD_POOLINGS:
            raise unknown_name("head pooling", self.head_pooling, HEAD_POOLINGS)
        if self.label_noise > 0 and self.task not in ("classify", "multilabel", "segment"):
            raise ConfigError(
                f"label_noise={self.label_noise} applies to classify, multilabel and segment tasks, "
                f"not task={self.task}"
            )
