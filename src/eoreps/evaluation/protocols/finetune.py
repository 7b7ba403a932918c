"""Trained protocols: full fine-tuning, supervised training from scratch, frozen encoder + decoder.

All three build ``MultiHeadModel(FeatureNorm(encoder), [task])`` (a new linear head on standardised
pooled features, or a U-Net decoder for segmentation) and train it with
:func:`eoreps.evaluation.protocols.train.fit`:

* ``finetune``: every encoder weight trains, at ``lr * backbone_lr_mult`` (default 0.1),
  the new head at ``lr``;
* ``supervised``: a randomly initialised encoder trained end to end at ``lr`` (the from-scratch baseline);
* frozen encoder (segmentation's ``linear`` protocol): only the decoder trains, the encoder stays in
  eval mode.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from eoreps.evaluation.encoders import build_method_encoder, method_modalities
from eoreps.evaluation.protocols.base import (
    Cell,
    TrainOptions,
    cell_precision,
    count_trainable,
    precision_fields,
    score_test,
)
from eoreps.evaluation.protocols.registry import TASKS, register_protocol
from eoreps.evaluation.protocols.train import fit, predict
from eoreps.tasks.multitask import MultiHeadModel


class FeatureNorm(nn.Module):
    """An encoder whose pooled features pass through ``BatchNorm1d(affine=False)`` before the head.

    Pretrained and random encoders emit features of very different scales; standardising them (as the
    linear probe does, and as MAE's linear probe does with the same layer) lets a new head learn at one
    learning rate in the few hundred steps of a cell. No parameters; maps pass through unchanged.
    """

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.norm = nn.BatchNorm1d(encoder.num_features, affine=False)
        self.num_features = encoder.num_features
        self.feature_info = encoder.feature_info
        self.grid_size = encoder.grid_size

    def _norm(self, z: torch.Tensor) -> torch.Tensor:
        if self.training and z.shape[0] == 1:  # batch statistics need two samples: use the running ones
            return nn.functional.batch_norm(z, self.norm.running_mean, self.norm.running_var, training=False)
        return self.norm(z)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Standardised pooled features ``(B, D)``."""
        return self._norm(self.encoder(batch))

    def forward_all(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Standardised pooled features and the encoder's maps."""
        pooled, maps = self.encoder.forward_all(batch)
        return self._norm(pooled), maps


def train_and_test(
    cell: Cell,
    encoder_lr_mult: float,
    freeze_encoder: bool,
    allow_channel_mismatch: bool = False,
    prepare=None,
) -> dict[str, float]:
    """Build the method's encoder plus a new head, train on the cell's subset, return test metrics.

    Args:
        encoder_lr_mult: learning-rate multiplier of the encoder (ignored when frozen).
        freeze_encoder: keep the encoder's weights and batch-norm statistics fixed.
        allow_channel_mismatch: see :func:`~eoreps.evaluation.encoders.load_pretrained`.
        prepare: optional ``prepare(built, cell) -> (encoder, extra trainable modules, info dict)`` that
            modifies the encoder before training (the adapter protocol).
    """
    t0 = time.perf_counter()
    data, task, opts = cell.data, cell.data.task, cell.options.train
    built = build_method_encoder(cell.method, data, cell.seed, allow_channel_mismatch=allow_channel_mismatch)
    stats = built.stats or data.train_stats()
    mods = method_modalities(built, cell.method, data)
    encoder, extra, info = built.encoder, [], {}
    if freeze_encoder:
        encoder.requires_grad_(False)
    if prepare is not None:
        encoder, extra, info = prepare(built, cell)
    torch.manual_seed(cell.seed)
    model = MultiHeadModel(FeatureNorm(encoder), [task], decoder_channels=opts.decoder_channels)
    head_params = list(model.heads.parameters()) + [p for m in extra for p in m.parameters()]
    groups = [{"params": head_params, "lr": opts.lr}]
    if not freeze_encoder:
        groups.append({"params": list(built.encoder.parameters()), "lr": opts.lr * encoder_lr_mult})
    train_inputs = {m: x for m, x in data.normalized("train", stats).items() if m in mods}
    # the batch protocols.train.fit trains with: min(batch_size, n) (a k-shot cell has fewer samples)
    precision = cell_precision(cell, model, train_inputs, min(opts.batch_size, len(cell.train_idx)))
    log = fit(model, task, groups, train_inputs, data.splits["train"].target, cell.train_idx, opts, cell.seed,
              frozen=[built.encoder] if freeze_encoder else [], desc=f"{cell.method.name} {cell.protocol}",
              precision=precision["precision"])
    test_inputs = {m: x for m, x in data.normalized("test", stats).items() if m in mods}
    out = score_test(cell, data.splits["test"].target.numpy(), predict(model, task, test_inputs,
                                                                           precision=precision["precision"]))
    out.update(n_train=float(len(cell.train_idx)), trainable_params=float(count_trainable(model)),
               steps=log["steps"], final_loss=log["final_loss"], seconds=time.perf_counter() - t0, **info,
               **precision_fields("train", precision))
    return out


@register_protocol("finetune", tasks=TASKS, options=(TrainOptions,))
def run_finetune(cell: Cell) -> dict[str, float]:
    """Full fine-tuning with a new head; the encoder learns at ``lr * backbone_lr_mult``."""
    return train_and_test(cell, cell.options.train.backbone_lr_mult, freeze_encoder=False)


@register_protocol("supervised", tasks=TASKS, method_kinds=("supervised",), options=(TrainOptions,))
def run_supervised(cell: Cell) -> dict[str, float]:
    """Supervised training from scratch: random encoder and head trained end to end at one learning rate."""
    return train_and_test(cell, 1.0, freeze_encoder=False)
