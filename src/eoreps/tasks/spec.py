"""What a task is: its kind, the batch key of its target, its size, and its loss.

=============  ===============  ==============================  ===========================
kind           target key       model output                    loss
=============  ===============  ==============================  ===========================
``classify``   ``label``        ``(B, K)`` logits               cross-entropy
``multilabel`` ``multilabel``   ``(B, K)`` logits               binary cross-entropy
``segment``    ``mask``         ``(B, K, H, W)`` logits         cross-entropy (ignore -100)
``regress``    ``target``       ``(B,)`` or (mean, log_var)     MSE or Gaussian NLL
=============  ===============  ==============================  ===========================

Regression targets are standardised with ``target_mean`` / ``target_std`` (from the training split)
inside the model; predictions and metrics are reported in the target's own units.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from eoreps.data.datasets.base import IGNORE_INDEX
from eoreps.errors import ConfigError, unknown_name
from eoreps.models.heads import gaussian_nll
from eoreps.tasks.cam import image_label_loss
from eoreps.tasks.weak_labels import WEAK_KEYS, check_supervision

KINDS = ("classify", "multilabel", "segment", "regress")
TARGET_KEYS = {"classify": "label", "multilabel": "multilabel", "segment": "mask", "regress": "target"}


@dataclass
class TaskSpec:
    """One task of a (multi-task) model.

    Attributes:
        kind: one of :data:`KINDS`.
        name: task name in logs and metrics (default: ``kind``).
        target: batch key of the target (default from :data:`TARGET_KEYS`).
        num_classes: classes / labels (classify, multilabel, segment).
        heteroscedastic: regression predicts mean and log-variance (Gaussian NLL) instead of MSE.
        target_mean, target_std: standardisation of regression targets (training-split statistics).
        positive_class: for segmentation, the class whose IoU is reported as ``iou`` (e.g. plume = 1).
        supervision: segmentation only: ``full`` (masks), ``image`` (image-level labels through a pooled
            class activation map, :mod:`eoreps.tasks.cam`) or ``points`` (cross-entropy on a few labelled
            pixels); the weak targets come from :class:`eoreps.tasks.weak_labels.WeakLabels`.
        pooling, lse_r: ``image`` supervision: how the map is pooled (``lse`` | ``gap``) and
            the LSE sharpness.
    """

    kind: str
    name: str = ""
    target: str = ""
    num_classes: int = 0
    heteroscedastic: bool = False
    target_mean: float = 0.0
    target_std: float = 1.0
    positive_class: int | None = None
    supervision: str = "full"
    pooling: str = "lse"
    lse_r: float = 5.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise unknown_name("task", self.kind, KINDS)
        self.name = self.name or self.kind
        self.target = self.target or TARGET_KEYS[self.kind]
        if (
            self.kind != "regress"
            and self.num_classes < 2
            and not (self.kind == "multilabel" and self.num_classes >= 1)
        ):
            raise ConfigError(
                f"task '{self.name}': num_classes={self.num_classes}; a {self.kind} task needs >= 2 classes"
            )
        if self.heteroscedastic and self.kind != "regress":
            raise ConfigError(f"task '{self.name}': heteroscedastic applies to regression only")
        if check_supervision(self.supervision) != "full" and self.kind != "segment":
            raise ConfigError(
                f"task '{self.name}': supervision '{self.supervision}' applies to segmentation only"
            )
        if self.target_std <= 0:
            raise ConfigError(f"task '{self.name}': target_std={self.target_std} must be positive")

    @property
    def loss_target(self) -> str:
        """Batch key the training loss reads: ``target``, or the weak labels' key (metrics still
        use ``target``)."""
        return WEAK_KEYS.get(self.supervision, self.target)

    @property
    def is_regression(self) -> bool:
        """True for regression (Gaussian likelihood in uncertainty weighting)."""
        return self.kind == "regress"

    def loss(
        self, output: torch.Tensor | tuple[torch.Tensor, torch.Tensor], target: torch.Tensor
    ) -> torch.Tensor:
        """Training loss of ``output`` (model space: standardised for regression) against ``target``."""
        if self.kind == "classify":
            return F.cross_entropy(output.float(), target.long())
        if self.kind == "multilabel":
            return F.binary_cross_entropy_with_logits(output.float(), target.float())
        if self.kind == "segment" and self.supervision == "image":
            return image_label_loss(output, target, self.pooling, self.lse_r)
        if self.kind == "segment":  # full masks, or points: IGNORE_INDEX on every unlabelled pixel
            return F.cross_entropy(output.float(), target.long(), ignore_index=IGNORE_INDEX)
        z = (target.float() - self.target_mean) / self.target_std
        if self.heteroscedastic:
            mean, log_var = output
            return gaussian_nll(mean.float(), log_var.float(), z)
        return F.mse_loss(output.float(), z)

    def to_units(self, output: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Regression: the predicted mean in target units ``(B,)``; other kinds: ``output`` unchanged."""
        if self.kind != "regress":
            return output
        mean = output[0] if self.heteroscedastic else output
        return mean.float() * self.target_std + self.target_mean
