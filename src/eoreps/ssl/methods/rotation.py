"""Rotation prediction (Gidaris, Singh & Komodakis 2018): which of 0/90/180/270 degrees was applied?

Every image of a batch is shown in all four rotations (the paper found this better than one random
rotation per image), so a batch of ``B`` images becomes ``4 B`` inputs with labels ``k`` (``k`` quarter
turns counter-clockwise, :func:`torch.rot90`); a linear 4-way classifier on the backbone's pooled
features is trained with cross-entropy. Views: one random resized crop per image before rotating
(no flips: a vertical flip changes what "up" is, the very thing the task asks for).

Caveat for Earth observation: overhead imagery has no canonical "up". Ground-level photos have sky
above and ground below; a satellite patch looks equally plausible in any orientation, except for
cues such as the sun's direction in shadows and terrain shading, or the look direction of a SAR
sensor. The task may therefore teach less here than on ImageNet (see ``docs/ssl.md`` for SimEO).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from eoreps.errors import ConfigError
from eoreps.ssl.methods.base import Batch, SSLMethod
from eoreps.ssl.methods.registry import register_method


def rotate_all(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All four rotations of each image.

    Args:
        x: ``(B, C, S, S)`` square images.

    Returns:
        ``(4 B, C, S, S)`` images, block ``k`` (rows ``k B .. (k + 1) B - 1``) rotated by ``k`` quarter
        turns counter-clockwise, and their ``(4 B,)`` int64 labels ``k``.
    """
    if x.shape[-1] != x.shape[-2]:
        raise ConfigError(f"rotation prediction needs square images, got {x.shape[-2]}x{x.shape[-1]}")
    views = torch.cat([torch.rot90(x, k, dims=(-2, -1)) for k in range(4)])
    labels = torch.arange(4, device=x.device).repeat_interleave(x.shape[0])
    return views, labels


@register_method("rotation")
class Rotation(SSLMethod):
    """Rotation prediction.

    Args:
        crop_scale: area range of the random resized crop drawn before rotating (``None``: no crop).
        head_hidden: hidden width of the classifier (``None``: a linear classifier, so the backbone's
            features themselves must separate the rotations).
        **kwargs: see :class:`~eoreps.ssl.methods.base.SSLMethod`; images must be square.
    """


    def __init__(self, crop_scale: Sequence[float] | None = (0.5, 1.0), head_hidden: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.image_size[0] != self.image_size[1]:
            raise ConfigError(f"rotation prediction needs square images, got {self.image_size}; "
                              "crop the data to squares or choose another method")
        if crop_scale is not None and not (len(crop_scale) == 2 and 0 < crop_scale[0] <= crop_scale[1] <= 1):
            raise ConfigError(f"crop_scale must be two numbers 0 < lo <= hi <= 1 (or None), got {crop_scale}")
        if head_hidden is not None and head_hidden < 1:
            raise ConfigError(f"head_hidden must be >= 1 or None, got {head_hidden}")
        from eoreps.models.heads import MLPHead

        self.head = MLPHead(self.encoder.num_features, 4, hidden=head_hidden)
        self.augment = None
        if crop_scale is not None:
            from eoreps.transforms import RandomResizedCrop

            self.augment = RandomResizedCrop(
                self.image_size, scale=(float(crop_scale[0]), float(crop_scale[1]))
            )

    def make_views(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotated images ``(4 B, C, S, S)`` and their rotation labels ``(4 B,)`` (:func:`rotate_all`)."""
        mods = {m: batch[m] for m in self.modalities}
        if self.augment is not None:
            mods = self.augment(mods)
        return rotate_all(self.stack(mods))

    def loss(self, views: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, labels = views
        logits = self.head(self.encoder(x))  # (4 B, 4)
        loss = F.cross_entropy(logits, labels)
        return loss, {"rotation_acc": (logits.detach().argmax(1) == labels).float().mean()}
