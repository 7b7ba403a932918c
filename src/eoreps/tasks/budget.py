"""Annotation budget model: what a full mask, an image-level label and k point labels cost, in seconds.

Used by ``eoreps experiment weak-supervision`` to give every kind of supervision the same total
annotation time. The unit costs are *our assumptions*, scaled from the per-image times Bearman et al.
(2016, "What's the point: semantic segmentation with point supervision", ECCV) reported for PASCAL VOC
(20 classes): image-level labels 20.0 s per image (about 1 s per class question), one point per class
present 22.1 s per image (the tags plus about 2.4 s per click), full masks 239.7 s per image. We did not
find these figures in the project's REFERENCE.md, so they are stated here as the basis of the model,
not as a measurement:

=============  ==============================================================  ======================
supervision    cost of one patch with ``K`` classes                             SimEO (K = 8)
=============  ==============================================================  ======================
``image``      ``K * tag_s`` (one yes/no question per class)                   8.0 s
``points``     ``K * tag_s + point_s * clicks`` (tags, then ``min(k, pixels)``  13.5 s (k=1),
               clicks per class present)                                        35.2 s (k=5), mean
``full``       ``full_over_image * K * tag_s`` (Bearman's full/image ratio)    95.9 s
=============  ==============================================================  ======================

(The SimEO point costs are means over the training split: 2.29 classes present per 32 x 32 patch.)
A budget of ``B`` seconds buys ``floor(B / mean cost)`` patches of a kind. Validation labels are of
the same kind and are not counted (as in the label-efficiency study, model selection data is free).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eoreps.data.datasets.base import IGNORE_INDEX
from eoreps.errors import ConfigError
from eoreps.tasks.weak_labels import check_supervision


@dataclass(frozen=True)
class AnnotationCosts:
    """Unit costs in seconds (defaults after Bearman et al. 2016; see the module docstring).

    Attributes:
        tag_s: one image-level yes/no class question.
        point_s: one clicked point.
        full_over_image: cost of a full mask relative to the image-level labels of the same patch.
    """

    tag_s: float = 1.0
    point_s: float = 2.4
    full_over_image: float = 239.7 / 20.0

    def __post_init__(self) -> None:
        if min(self.tag_s, self.point_s, self.full_over_image) <= 0:
            raise ConfigError(f"annotation costs must be positive, got {self}")

    def patch_cost(self, supervision: str, num_classes: int, clicks: float = 0.0) -> float:
        """Seconds to annotate one patch with ``supervision`` (``clicks``: points clicked, for ``points``)."""
        tags = num_classes * self.tag_s
        if check_supervision(supervision) == "image":
            return tags
        if supervision == "points":
            return tags + self.point_s * clicks
        return self.full_over_image * tags


def clicks_per_patch(masks: np.ndarray, num_classes: int, points_per_class: int) -> np.ndarray:
    """``(N,)`` points an annotator clicks per patch: ``min(k, pixels of c)`` summed over
    classes ``c`` present.

    Args:
        masks: ``(N, H, W)`` int class indices (``IGNORE_INDEX`` unlabelled).
        num_classes: ``K``.
        points_per_class: ``k``.
    """
    m = np.asarray(masks).reshape(len(masks), -1)
    counts = np.stack([(m == c).sum(1) for c in range(num_classes)], axis=1)
    if ((m != IGNORE_INDEX) & ((m < 0) | (m >= num_classes))).any():
        raise ConfigError(f"masks hold class indices outside 0..{num_classes - 1}")
    return np.minimum(counts, points_per_class).sum(1)


def mean_patch_cost(costs: AnnotationCosts, supervision: str, masks: np.ndarray, num_classes: int,
                    points_per_class: int = 1) -> float:
    """Mean cost of one patch of the pool ``masks`` ``(N, H, W)`` for ``supervision``."""
    clicks = (
        float(clicks_per_patch(masks, num_classes, points_per_class).mean())
        if supervision == "points"
        else 0.0
    )
    return costs.patch_cost(supervision, num_classes, clicks)


def patches_for_budget(budget_s: float, cost_s: float, pool: int) -> int:
    """Patches a budget of ``budget_s`` seconds buys at ``cost_s`` per patch (at least 1,
    at most ``pool``)."""
    if budget_s <= 0 or cost_s <= 0:
        raise ConfigError(f"budget {budget_s} s and patch cost {cost_s} s must be positive")
    return int(min(pool, max(1, np.floor(budget_s / cost_s))))
