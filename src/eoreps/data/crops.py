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


def gather_windows(images: torch.Tensor, rows: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
                   size: int) -> torch.Tensor:
    """``size`` px windows of ``images`` ``(N, C, H, W)`` in one advanced-indexing gather: window ``b`` is
    cut from image ``rows[b]`` at ``(top[b], left[b])``; returns ``(B, C, size, size)``."""
    ar = torch.arange(size)
    r = (top[:, None] + ar)[:, None, :, None]  # (B, 1, t, 1)
    c = (left[:, None] + ar)[:, None, None, :]  # (B, 1, 1, t)
    ch = torch.arange(images.shape[1])[None, :, None, None]
    return images[rows[:, None, None, None], ch, r, c]


def random_crop_batch(batch: dict[str, torch.Tensor], modalities: Sequence[str], crop: int | None,
                      generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A batch ``{modality: (B, C, H, W)}`` with one random ``crop`` px window per sample, the same window in
    every modality (in-memory counterpart of :func:`crop_sample`); unchanged when ``crop`` is ``None`` or not
    smaller than the images."""
    ref = batch[modalities[0]]
    b, h, w = int(ref.shape[0]), int(ref.shape[-2]), int(ref.shape[-1])
    if crop is None or crop >= min(h, w):
        return batch
    top = torch.randint(0, h - crop + 1, (b,), generator=generator)
    left = torch.randint(0, w - crop + 1, (b,), generator=generator)
    rows = torch.arange(b)
    return {**batch, **{m: gather_windows(batch[m], rows, top, left, crop) for m in modalities}}
