"""What every protocol receives (:class:`Cell`), its options, and the frozen-feature helper.

A cell of a study is one (method, protocol, label fraction, seed). A protocol function takes a
:class:`Cell` and returns a flat dict: the test metrics of :mod:`eoreps.evaluation.metrics` plus
``n_train`` (labelled samples used), ``trainable_params`` and any protocol-specific entries
(e.g. the regularisation chosen on the validation split).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eoreps.evaluation.data import EvalData, stats_digest
from eoreps.evaluation.encoders import BuiltEncoder, MethodSpec, build_method_encoder, method_modalities
from eoreps.evaluation.features import cached_features
from eoreps.evaluation.metrics import task_metrics


@dataclass
class LinearOptions:
    """Linear probe: inverse regularisation strengths tried (``C`` of scikit-learn; the multi-label
    torch head uses weight decay ``1 / (C * n)``), picked on the validation split."""

    C: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0, 100.0])
    max_iter: int = 1000


@dataclass
class KnnOptions:
    """kNN: neighbours ``k`` and vote temperature ``temperature`` (Wu et al. 2018 use k=200, T=0.07)."""

    k: int = 20
    temperature: float = 0.07


@dataclass
class TrainOptions:
    """Gradient training (finetune, adapter, supervised, segmentation decoders).

    The number of optimiser steps is ``epochs`` passes over the labelled subset, but at least
    ``min_steps`` (tiny label fractions still get trained) and at most ``max_steps`` (``0``: no cap).
    AdamW with a cosine schedule over those steps; random flips as augmentation.
    """

    epochs: int = 30
    min_steps: int = 100
    max_steps: int = 0
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    backbone_lr_mult: float = 0.1
    augment: bool = True
    decoder_channels: int = 32


@dataclass
class AdapterOptions:
    """Adapter protocol: ``kind`` ``spectral`` (1-D spectral adapter in front of the frozen backbone),
    ``lora`` (low-rank adapters on its convolutions / linear layers) or ``auto`` (spectral when an input
    has at least ``many_bands`` bands or its band count differs from the backbone's, else lora)."""

    kind: str = "auto"
    rank: int = 4
    alpha: float = 4.0
    spectral_hidden: int = 16
    spectral_kernel: int = 5
    many_bands: int = 32


@dataclass
class ProtocolOptions:
    """All protocol options of a study."""

    linear: LinearOptions = field(default_factory=LinearOptions)
    knn: KnnOptions = field(default_factory=KnnOptions)
    train: TrainOptions = field(default_factory=TrainOptions)
    adapter: AdapterOptions = field(default_factory=AdapterOptions)
    feature_batch_size: int = 256
    precision: str = "fp32"  # fp32 | bf16 (CPU autocast of forward passes); `eoreps evaluate` resolves auto


@dataclass
class Cell:
    """One unit of work of a study.

    Attributes:
        data: the evaluation data (all splits in memory).
        method: the compared method.
        protocol: protocol name.
        fraction: label fraction of the training split.
        seed: seed of the subset, initialisation and training.
        train_idx: ``(n,)`` indices into the training split (the nested stratified subset).
        options: protocol options.
        cache_dir: feature cache folder (``None``: no cache).
        test_predictions: set by the protocol (:func:`score_test`): the compact test predictions
            (:func:`eoreps.evaluation.study_ci.compact_predictions`) from which the study bootstraps its
            confidence intervals; ``None`` for segmentation.
    """

    data: EvalData
    method: MethodSpec
    protocol: str
    fraction: float
    seed: int
    train_idx: np.ndarray
    options: ProtocolOptions = field(default_factory=ProtocolOptions)
    cache_dir: Path | None = None
    test_predictions: np.ndarray | None = None


def score_test(cell: Cell, target: np.ndarray, output: np.ndarray) -> dict[str, float]:
    """The test metrics of ``output`` (:func:`eoreps.evaluation.metrics.task_metrics`); keeps the compact
    predictions in ``cell.test_predictions`` for the study's bootstrap."""
    from eoreps.evaluation.study_ci import compact_predictions

    kind = cell.data.task.kind
    cell.test_predictions = compact_predictions(kind, output)
    return task_metrics(kind, target, output, cell.data.classes)


def cell_precision(cell: Cell, model: torch.nn.Module,
                   inputs: dict[str, torch.Tensor] | Callable[[], dict[str, torch.Tensor]], batch_size: int,
                   forward_only: bool = False) -> dict[str, str]:
    """``{"precision", "reason"}`` a cell runs ``model`` in: the study's ``options.precision``, except under
    ``auto`` on a CPU with the bf16 flags, where ``model`` is timed in fp32 and bf16 on a random batch of
    ``batch_size`` samples shaped like ``inputs`` (:func:`eoreps.precision_probe.measured_choice`, cached per
    model structure, shapes and CPU): a trained cell's training step (encoder, head, trainable adapters),
    or with ``forward_only`` the frozen encoder's feature pass (linear probe, kNN). Cells run on the CPU
    (CPU autocast), so a CUDA device changes nothing here. Only the shapes of ``inputs`` are used; it may
    be a function returning them, called only when a timing is needed."""
    from eoreps.precision import precision_record, requested, resolve_auto
    from eoreps.precision_probe import Workload, measured_choice

    if requested(cell.options) != "auto" or not resolve_auto("cpu").measurable:
        return precision_record(cell.options.precision, asked=requested(cell.options))
    if callable(inputs):
        inputs = inputs()
    gen = torch.Generator().manual_seed(0)  # the cell's random state is left alone
    batch = {m: torch.randn(batch_size, *x.shape[1:], generator=gen) for m, x in inputs.items()}
    shapes = " + ".join(f"{m} {'x'.join(map(str, x.shape[1:]))}" for m, x in inputs.items())
    # keyed by the model's structure (frozen parts included) and shapes: not the weights file or the seed
    what = "features" if forward_only else cell.protocol
    label = f"{cell.method.name} {what} {shapes} b{batch_size}"
    return measured_choice(Workload([(model, batch)], label, forward_only=forward_only)).record()


def frozen_features(cell: Cell) -> tuple[dict[str, torch.Tensor], BuiltEncoder, dict[str, str]]:
    """Pooled features of the frozen encoder for the full train / val / test splits (cached).

    Returns ``({"train": (N_train, D), "val": ..., "test": ...}, built encoder, precision record)``; the
    caller indexes the training features with ``cell.train_idx``. The precision is
    :func:`cell_precision` of the encoder's forward pass at the batch the features are extracted with
    (``feature_batch_size``, at most the training split); the protocols record it as ``feature_precision``.

    Peak memory: each split is normalised only when needed (the training split for a precision timing, a
    split whose features are not cached), one at a time, and dropped once its features are extracted; the
    normalised copies are not kept on ``cell.data`` (a large evaluation set held the three at once before).
    """
    built = build_method_encoder(cell.method, cell.data, cell.seed)
    stats = built.stats or cell.data.train_stats()
    mods = method_modalities(built, cell.method, cell.data)
    held: dict[str, dict[str, torch.Tensor]] = {}

    def inputs(split: str) -> dict[str, torch.Tensor]:
        if split not in held:  # normalised once (the timing and the extraction share the training split)
            normalized = cell.data.normalized(split, stats, keep=False)
            held[split] = {m: normalized[m] for m in mods}
        return held[split]

    batch = max(1, min(cell.options.feature_batch_size, len(cell.data.splits["train"])))
    precision = cell_precision(cell, built.encoder, partial(inputs, "train"), batch, forward_only=True)
    out = {}
    for split in ("train", "val", "test"):
        key: dict[str, Any] = {"encoder": built.identity, "data": cell.data.fingerprint, "split": split,
                               "norm": stats_digest(stats, mods), "v": 1}
        out[split] = cached_features(built.encoder, partial(inputs, split), key, cell.cache_dir,
                                     cell.options.feature_batch_size, precision=precision["precision"],
                                     n=len(cell.data.splits[split]))
        held.pop(split, None)  # its features exist: free the normalised inputs before the next split
    return out, built, precision


def precision_fields(prefix: str, record: dict[str, str]) -> dict[str, str]:
    """``{"<prefix>_precision": ..., "<prefix>_precision_reason": ...}``: how a cell records a precision."""
    return {f"{prefix}_precision": record["precision"], f"{prefix}_precision_reason": record["reason"]}


def count_trainable(module: torch.nn.Module) -> int:
    """Number of parameters with ``requires_grad``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
