"""Weak segmentation labels generated from full masks: image-level tags and k labelled points per class.

What an annotator would deliver instead of a full mask, simulated from the true mask of each patch:

* ``image`` -- the classes present in the patch, a multi-hot ``(K,)`` vector. The dataset's own
  ``multilabel`` is used when it has ``K`` entries (SimEO: classes covering >= 10 % of the patch, the
  threshold an annotator tagging visible classes would plausibly apply); otherwise it is derived from
  the mask with :data:`IMAGE_MIN_FRACTION`.
* ``points`` -- for every class present in the mask, ``k`` pixels drawn uniformly among that class's
  pixels (all of them when the class has fewer); every other pixel is ``IGNORE_INDEX``. The draw is
  seeded by ``(seed, salt, sample index)``, so a training sample keeps the same points in every epoch
  and every run with the same seed.

:class:`WeakLabels` wraps a dataset and adds the key the loss reads (``image_labels`` or ``points``,
see :attr:`eoreps.tasks.spec.TaskSpec.loss_target`); the true ``mask`` stays in the sample for the
metrics. The losses live in :mod:`eoreps.tasks.cam`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from eoreps.data.datasets.base import IGNORE_INDEX
from eoreps.errors import ConfigError, DataError, unknown_name

SUPERVISIONS = ("full", "image", "points")
#: batch key of each weak target (``full`` trains on ``mask``)
WEAK_KEYS = {"image": "image_labels", "points": "points"}
#: a class is "present" for derived image labels when it covers at least this fraction of the labelled pixels
IMAGE_MIN_FRACTION = 0.1


def check_supervision(supervision: str) -> str:
    """``supervision`` if known, else a one-line :class:`ConfigError` listing the choices."""
    if supervision not in SUPERVISIONS:
        raise unknown_name("supervision", supervision, SUPERVISIONS)
    return supervision


def sample_rng(seed: int, salt: int, index: int) -> np.random.Generator:
    """The generator of one sample's weak labels: a function of ``(seed, salt, index)`` only."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(salt), int(index)])


def sample_points(mask: torch.Tensor | np.ndarray, k: int, rng: np.random.Generator) -> torch.Tensor:
    """Keep ``k`` random pixels per class of ``mask`` (all when a class has fewer), ignore the rest.

    Args:
        mask: ``(H, W)`` int class indices (``IGNORE_INDEX`` for unlabelled pixels).
        k: points per class (>= 1).
        rng: the sample's generator (:func:`sample_rng`).

    Returns:
        ``(H, W)`` int64: the class at the kept pixels, ``IGNORE_INDEX`` elsewhere.
    """
    if k < 1:
        raise ConfigError(f"points_per_class={k}: need at least one labelled pixel per class")
    m = np.asarray(mask).astype(np.int64).ravel()
    out = np.full_like(m, IGNORE_INDEX)
    for c in np.unique(m[m != IGNORE_INDEX]):
        where = np.flatnonzero(m == c)
        keep = rng.choice(where, size=min(k, where.size), replace=False)
        out[keep] = c
    return torch.from_numpy(out.reshape(np.asarray(mask).shape))


def image_labels_from_mask(mask: torch.Tensor | np.ndarray, num_classes: int,
                           min_fraction: float = IMAGE_MIN_FRACTION) -> torch.Tensor:
    """``(K,)`` float32 multi-hot: classes covering >= ``min_fraction`` of the labelled pixels
    of ``(H, W)`` ``mask``."""
    m = torch.as_tensor(mask).long().reshape(-1)
    m = m[m != IGNORE_INDEX]
    if m.numel() == 0:
        return torch.zeros(num_classes, dtype=torch.float32)
    if int(m.min()) < 0 or int(m.max()) >= num_classes:
        raise DataError(f"mask has class indices outside 0..{num_classes - 1}; check the dataset's classes")
    cover = torch.bincount(m, minlength=num_classes).float() / m.numel()
    return ((cover > 0) & (cover >= min_fraction)).float()


def image_labels(sample: dict[str, Any], num_classes: int) -> torch.Tensor:
    """The image-level labels of one sample: its ``multilabel`` when it has ``K`` entries,
    else from its mask."""
    ml = sample.get("multilabel")
    if ml is not None and torch.as_tensor(ml).numel() == num_classes:
        return torch.as_tensor(ml).float().reshape(num_classes)
    if "mask" not in sample:
        raise DataError(
            "image-level supervision needs 'multilabel' or 'mask' in the samples; use a segmentation dataset"
        )
    return image_labels_from_mask(sample["mask"], num_classes)


class WeakLabels(Dataset):
    """Adds the weak target of ``supervision`` to every sample of ``dataset`` (the true mask is kept).

    Args:
        dataset: map-style dataset of sample dicts with ``mask`` (H, W).
        supervision: ``image`` (adds ``image_labels`` (K,) float32) or ``points`` (adds ``points``
            (H, W) int64).
        num_classes: segmentation classes ``K``.
        points_per_class: ``k`` for ``points``.
        seed: seed of the point draw.
        salt: tells the splits of one run apart (train 0, val 1) so they get independent draws.

    Other attributes (``classes``, ``label_matrix``, ``synthetic`` ...) are those of ``dataset``.
    """

    def __init__(self, dataset: Any, supervision: str, num_classes: int, points_per_class: int = 1,
                 seed: int = 0, salt: int = 0) -> None:
        if check_supervision(supervision) == "full":
            raise ConfigError("WeakLabels: supervision 'full' needs no weak labels; use the dataset itself")
        if points_per_class < 1:
            raise ConfigError(
                f"points_per_class={points_per_class}: need at least one labelled pixel per class"
            )
        self.dataset = dataset
        self.supervision = supervision
        self.num_classes = int(num_classes)
        self.points_per_class = int(points_per_class)
        self.seed = int(seed)
        self.salt = int(salt)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = dict(self.dataset[index])
        if self.supervision == "image":
            sample["image_labels"] = image_labels(sample, self.num_classes)
        else:
            if "mask" not in sample:
                raise DataError("point supervision needs a 'mask' in the samples; use a segmentation dataset")
            sample["points"] = sample_points(sample["mask"], self.points_per_class,
                                             sample_rng(self.seed, self.salt, index))
        return sample

    def __getattr__(self, name: str) -> Any:
        # forward dataset attributes (classes, label_matrix, cache_key ...); never recurse before __init__
        if name.startswith("__") or name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)
