"""Square crops of sample dicts: random (training) or centred (evaluation, monitors).

One window per sample, cut at the same place from every image modality and the mask, so co-registered
modalities stay aligned. Used by the packed-archive stream (:mod:`eoreps.data.datasets.packed`) and the
in-memory pretraining data (:mod:`eoreps.ssl.data`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from eoreps.data.datasets.base import Sample


def crop_box(h: int, w: int, crop: int, rng: np.random.Generator | None) -> tuple[int, int]:
    """``(top, left)`` of a ``crop`` px window in an ``h x w`` patch: random with ``rng``, centred without."""
    if rng is None:
        return (h - crop) // 2, (w - crop) // 2
    return int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))


def crop_sample(sample: Sample, modalities: Sequence[str], crop: int | None,
                rng: np.random.Generator | None = None) -> Sample:
    """``sample`` with the same ``crop`` px window (random with ``rng``, else centred) cut from every image
    modality and the mask; unchanged when ``crop`` is ``None`` or not smaller than the patch."""
    ref = sample[modalities[0]]
    h, w = int(ref.shape[-2]), int(ref.shape[-1])
    if crop is None or crop >= min(h, w):
        return sample
    top, left = crop_box(h, w, crop, rng)
    out = dict(sample)
    for k in [*modalities, "mask"]:
        if k in out and getattr(out[k], "ndim", 0) >= 2:
            out[k] = out[k][..., top:top + crop, left:left + crop]
    return out


def centre_crop(x: torch.Tensor, crop: int | None) -> torch.Tensor:
    """The centred ``crop`` px window of ``(..., H, W)`` images or ``(N, H, W)`` masks; vectors (fewer than 3
    dimensions), ``crop=None`` and a crop not smaller than the patch leave ``x`` unchanged."""
    if x.dim() < 3 or crop is None:
        return x
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if crop >= min(h, w):
        return x
    top, left = crop_box(h, w, crop, None)
    return x[..., top:top + crop, left:left + crop]
