"""Weighted cosine k-nearest-neighbour classification on frozen features (Wu et al. 2018; DINO's eval).

For a query ``q`` and training features ``x_i`` (both L2-normalised), the ``k`` most similar training
samples vote with weight ``exp(cos(q, x_i) / T)``:

* single-label: class score ``s_c = sum_{i in topk} exp(cos_i / T) [y_i = c]``, prediction ``argmax_c s_c``;
* multi-label: label probability ``p_c = sum_i w_i y_ic / sum_i w_i`` (a weighted vote per label).

Written out here (a few lines of torch) rather than taken from scikit-learn: its ``KNeighborsClassifier``
supports cosine distance but weights votes only uniformly or by ``1 / distance``, not by the temperature
softmax of the SSL literature, and it has no multi-label vote.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from eoreps.errors import ConfigError
from eoreps.evaluation.protocols.base import Cell, KnnOptions, frozen_features, precision_fields, score_test
from eoreps.evaluation.protocols.registry import register_protocol


@torch.no_grad()
def knn_scores(
    train_feats: torch.Tensor,
    train_targets: torch.Tensor,
    query_feats: torch.Tensor,
    k: int,
    temperature: float,
    num_classes: int,
    multilabel: bool = False,
    chunk: int = 1024,
) -> torch.Tensor:
    """Temperature-weighted cosine kNN votes.

    Args:
        train_feats: ``(N, D)`` features of the labelled samples.
        train_targets: ``(N,)`` class indices, or ``(N, K)`` multi-hot when ``multilabel``.
        query_feats: ``(M, D)`` features to classify.
        k: neighbours (clipped to ``N``).
        temperature: ``T`` of the vote weights ``exp(cos / T)``.
        num_classes: ``K``.
        multilabel: weighted mean of neighbours' multi-hot vectors instead of class votes.
        chunk: queries per block (bounds memory at ``chunk x N``).

    Returns:
        ``(M, K)`` float64: class scores (single-label) or label probabilities in [0, 1] (multi-label).
    """
    if k < 1 or temperature <= 0:
        raise ConfigError(f"kNN needs k >= 1 and temperature > 0, got k={k}, temperature={temperature}")
    xtr = F.normalize(train_feats.float(), dim=1)
    k = min(k, len(xtr))
    if multilabel:
        ytr = train_targets.float()
    else:
        ytr = F.one_hot(train_targets.long(), num_classes).float()
    out = []
    for s in range(0, len(query_feats), chunk):
        q = F.normalize(query_feats[s:s + chunk].float(), dim=1)
        sim, nn_idx = (q @ xtr.T).topk(k, dim=1)
        # float64: exp(1 / T) stays finite down to T ~ 0.0015
        w = (sim.double() / temperature).exp()
        votes = (w[:, :, None] * ytr[nn_idx].double()).sum(1)
        if multilabel:
            votes = votes / w.sum(1, keepdim=True)
        out.append(votes)
    return torch.cat(out) if out else torch.zeros(0, num_classes)


@register_protocol("knn", tasks=("classify", "multilabel"), options=(KnnOptions,))
def run_knn(cell: Cell) -> dict[str, float]:
    """Frozen encoder + weighted cosine kNN (``k`` and ``T`` from :class:`KnnOptions`)."""
    kind = cell.data.task.kind
    if kind == "segment":
        raise ConfigError(
            "kNN classifies pooled features; for segmentation use protocol linear, finetune or adapter"
        )
    t0 = time.perf_counter()
    feats, _, precision = frozen_features(cell)
    idx = torch.as_tensor(cell.train_idx)
    ytr = cell.data.splits["train"].target[idx]
    opts = cell.options.knn
    scores = knn_scores(
        feats["train"][idx],
        ytr,
        feats["test"],
        opts.k,
        opts.temperature,
        len(cell.data.classes),
        multilabel=kind == "multilabel",
    )
    out = score_test(cell, cell.data.splits["test"].target.numpy(), scores.numpy())
    out.update(n_train=float(len(idx)), trainable_params=0.0, k=float(min(opts.k, len(idx))),
               temperature=float(opts.temperature), seconds=time.perf_counter() - t0,
               **precision_fields("feature", precision))
    return out
