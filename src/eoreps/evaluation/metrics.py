"""Test-set metrics of every protocol, computed the same way from predictions, named as in the tables.

==============  ===========================================================================================
task            metrics (fractions in [0, 1]; per-class ones are ``NaN`` for a class absent from the test set)
==============  ===========================================================================================
``classify``    ``oa`` overall accuracy, ``aa`` average accuracy (mean per-class recall over classes present
                in the test set, as in the published tables), ``f1_macro``, ``acc/<class>`` per-class accuracy
``multilabel``  ``f1_macro`` average F1 over labels present in the test set, ``f1_micro``, ``map`` (mean
                average precision over present labels), ``f1/<class>``; predictions at probability 0.5
``segment``     ``miou`` mean IoU over classes present in the truth or the prediction, ``pixel_acc``,
                ``iou/<class>``; pixels labelled ``IGNORE_INDEX`` are skipped
==============  ===========================================================================================

scikit-learn computes the building blocks (confusion matrix, F1, average precision); only the
"present classes" averaging of the published tables is written here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import average_precision_score, confusion_matrix, f1_score

from eoreps.data.datasets.base import IGNORE_INDEX

HEADLINE = {"classify": "aa", "multilabel": "f1_macro", "segment": "miou"}
"""The metric each task's label-efficiency plot and summary table show."""


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]
) -> dict[str, float]:
    """``(N,)`` true and predicted class indices -> ``oa``, ``aa``, ``f1_macro``, ``acc/<class>``."""
    k = len(classes)
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    cm = confusion_matrix(y_true, y_pred, labels=np.arange(k))
    support = cm.sum(1)
    present = support > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(present, np.diag(cm) / np.maximum(support, 1), np.nan)
    out = {
        "oa": float(np.trace(cm) / max(cm.sum(), 1)),
        "aa": float(np.nanmean(per_class)) if present.any() else float("nan"),
    }
    labels = np.flatnonzero(present)
    out["f1_macro"] = (
        float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))
        if len(labels)
        else float("nan")
    )
    out.update({f"acc/{c}": float(per_class[i]) for i, c in enumerate(classes)})
    return out


def multilabel_metrics(y_true: np.ndarray, prob: np.ndarray, classes: Sequence[str],
                       threshold: float = 0.5) -> dict[str, float]:
    """``(N, K)`` multi-hot truth and probabilities -> ``f1_macro``, ``f1_micro``, ``map``, ``f1/<class>``."""
    y_true = np.asarray(y_true) > 0.5
    prob = np.asarray(prob, dtype=np.float64)
    pred = prob >= threshold
    present = y_true.any(0)
    per_class = _label_f1(y_true, pred)
    out = {
        "f1_macro": float(np.nanmean(per_class)) if present.any() else float("nan"),
        "f1_micro": float(f1_score(y_true, pred, average="micro", zero_division=0)),
        "map": float(
            np.mean([average_precision_score(y_true[:, j], prob[:, j]) for j in np.flatnonzero(present)])
        )
        if present.any()
        else float("nan"),
    }
    out.update({f"f1/{c}": float(per_class[i]) for i, c in enumerate(classes)})
    return out


def _label_f1(y_true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-label F1 of bool ``(N, K)`` truth and predictions; NaN for labels absent from the truth."""
    per_class = f1_score(y_true, pred, average=None, zero_division=0)
    return np.where(y_true.any(0), per_class, np.nan)


def headline_score(kind: str, target: np.ndarray, output: np.ndarray, classes: Sequence[str]) -> float:
    """The task's headline metric (:data:`HEADLINE`) alone, as :func:`task_metrics` computes it; for model
    selection on the validation split (multi-label skips the mAP, which costs more than the F1)."""
    if kind == "multilabel":
        per_class = _label_f1(np.asarray(target) > 0.5, np.asarray(output, dtype=np.float64) >= 0.5)
        return float(np.nanmean(per_class)) if np.isfinite(per_class).any() else float("nan")
    return task_metrics(kind, target, output, classes)[HEADLINE[kind]]


def segmentation_metrics(
    mask_true: np.ndarray, mask_pred: np.ndarray, classes: Sequence[str]
) -> dict[str, float]:
    """``(N, H, W)`` true and predicted class maps -> ``miou``, ``pixel_acc``, ``iou/<class>``."""
    k = len(classes)
    t = np.asarray(mask_true, dtype=np.int64).ravel()
    p = np.asarray(mask_pred, dtype=np.int64).ravel()
    keep = (t != IGNORE_INDEX) & (t >= 0) & (t < k)
    cm = np.bincount(t[keep] * k + p[keep], minlength=k * k).reshape(k, k)
    inter = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - np.diag(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    out = {"miou": float(np.nanmean(iou)) if (union > 0).any() else float("nan"),
           "pixel_acc": float(inter.sum() / max(cm.sum(), 1))}
    out.update({f"iou/{c}": float(iou[i]) for i, c in enumerate(classes)})
    return out


def task_metrics(
    kind: str, target: np.ndarray, output: np.ndarray, classes: Sequence[str]
) -> dict[str, float]:
    """Metrics of ``kind`` from the model output.

    Args:
        kind: ``classify`` (``output`` = ``(N, K)`` scores or ``(N,)`` predictions), ``multilabel``
            (``(N, K)`` probabilities) or ``segment`` (``(N, K, H, W)`` scores or ``(N, H, W)`` predictions).
    """
    output = np.asarray(output)
    target = np.asarray(target)
    if kind == "classify":
        pred = output.argmax(1) if output.ndim == 2 else output
        return classification_metrics(target, pred, classes)
    if kind == "multilabel":
        return multilabel_metrics(target, output, classes)
    pred = output.argmax(1) if output.ndim == 4 else output
    return segmentation_metrics(target, pred, classes)
