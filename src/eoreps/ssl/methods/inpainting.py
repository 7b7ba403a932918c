"""Inpainting, the context encoder (Pathak et al. 2016): reconstruct a hidden square from its surroundings.

Per image a random square covering ``area`` of the image (1/4 by default: 16 x 16 px of a 32 x 32
patch) is set to 0 (the band mean after normalisation, as the paper fills with the mean) in every band
of every modality; the encoder reads the masked image and a decoder reconstructs all channels. As in
the paper's encoder-decoder, the decoder starts from the backbone's deepest feature map only (no skip
connections, which would let shallow features copy the border instead of the encoder having to
understand the context) and upsamples it to full resolution (:class:`ReconstructionDecoder`).

Loss: mean squared error in normalised units over the valid pixels inside the hole, plus
``context_weight`` times the error on the valid pixels outside it (0 by default: hole only). The
paper's adversarial loss is **not** used: it sharpens the pictures, which matters for image synthesis,
not for the features, and it would add a discriminator and a second optimiser. Views: a random D4
flip/rotation.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from eoreps.errors import ConfigError
from eoreps.ssl.methods.base import Batch, SSLMethod
from eoreps.ssl.methods.registry import register_method


def square_masks(batch_size: int, size: tuple[int, int], side: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """One random ``side x side`` square per image, fully inside it: ``(B, H, W)`` bool, True = hidden."""
    h, w = size
    top = torch.randint(0, h - side + 1, (batch_size, 1, 1), generator=generator)
    left = torch.randint(0, w - side + 1, (batch_size, 1, 1), generator=generator)
    rows = torch.arange(h)[None, :, None]
    cols = torch.arange(w)[None, None, :]
    return (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)


def inpainting_loss(pred: torch.Tensor, target: torch.Tensor, hole: torch.Tensor, valid: torch.Tensor,
                    context_weight: float = 0.0) -> torch.Tensor:
    """``MSE(hole & valid) + context_weight * MSE(~hole & valid)``, each a mean over pixels and channels.

    Args:
        pred, target: ``(B, C, H, W)``.
        hole: ``(B, H, W)`` bool, True inside the hidden square.
        valid: ``(B, H, W)`` bool, True where every channel of the target is real data.
    """
    err = ((pred - target) ** 2).mean(1)  # (B, H, W)
    inside = (hole & valid).to(err.dtype)
    loss = (err * inside).sum() / inside.sum().clamp(min=1.0)
    if context_weight > 0:
        outside = (~hole & valid).to(err.dtype)
        loss = loss + context_weight * (err * outside).sum() / outside.sum().clamp(min=1.0)
    return loss


class ReconstructionDecoder(nn.Module):
    """From the deepest feature map back to pixels: 1x1 projection, then (upsample x2, 3x3 conv-BN-ReLU)
    until the input resolution, then a 1x1 convolution to the output channels.

    Args:
        in_channels: channels of the deepest map.
        out_channels: channels to reconstruct.
        reduction: its downsampling factor (the number of x2 steps is ``round(log2(reduction))``; a
            final bilinear resize fixes sizes that are not powers of two).
        width: decoder channels.
    """

    def __init__(self, in_channels: int, out_channels: int, reduction: int, width: int = 64) -> None:
        super().__init__()
        from eoreps.models.heads import ConvBNReLU

        steps = max(0, round(math.log2(max(1, reduction))))
        self.proj = nn.Conv2d(in_channels, width, 1)
        self.ups = nn.ModuleList(ConvBNReLU(width, width) for _ in range(steps))
        self.out = nn.Conv2d(width, out_channels, 1)

    def forward(self, deepest: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        """``(B, C_in, h, w)`` -> ``(B, out_channels, *out_size)``."""
        h = self.proj(deepest)
        for block in self.ups:
            h = block(F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False))
        y = self.out(h)
        if tuple(y.shape[-2:]) != tuple(out_size):
            y = F.interpolate(y, size=out_size, mode="bilinear", align_corners=False)
        return y


@register_method("inpainting")
class Inpainting(SSLMethod):
    """Context encoder without the adversarial loss.

    Args:
        area: share of the image hidden by the square (its side is ``round(sqrt(area) * min(H, W))``).
        context_weight: weight of the reconstruction error outside the hole (0: hole only).
        decoder_channels: width of the decoder.
        **kwargs: see :class:`~eoreps.ssl.methods.base.SSLMethod`; the backbone must expose feature maps.
    """


    def __init__(self, area: float = 0.25, context_weight: float = 0.0, decoder_channels: int = 64,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0 < area < 1:
            raise ConfigError(f"area must be in (0, 1), got {area}")
        if context_weight < 0:
            raise ConfigError(f"context_weight must be >= 0, got {context_weight}")
        if decoder_channels < 1:
            raise ConfigError(f"decoder_channels must be >= 1, got {decoder_channels}")
        if not self.encoder.feature_info:
            raise ConfigError(f"inpainting decodes feature maps; backbone '{self.backbone_name}' has none")
        self.side = max(1, round(math.sqrt(area) * min(self.image_size)))
        self.context_weight = float(context_weight)
        deepest = self.encoder.feature_info[-1]
        channels = sum(self.in_chans[m] for m in self.modalities)
        self.decoder = ReconstructionDecoder(
            deepest["num_chs"], channels, deepest["reduction"], decoder_channels
        )
        from eoreps.transforms import RandomFlipRotate

        self.augment = RandomFlipRotate(rotate=self.image_size[0] == self.image_size[1])

    def make_views(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Masked input ``(B, C, H, W)``, target ``(B, C, H, W)``, hole ``(B, H, W)``, valid ``(B, H, W)``.

        A pixel is valid when every channel of every modality is real data there.
        """
        keys = [f"valid_{m}" for m in self.modalities]
        views = self.augment({**{m: batch[m] for m in self.modalities}, **{k: batch[k] for k in keys}})
        target = self.stack(views)
        valid = torch.stack([views[k] for k in keys]).all(0)
        hole = square_masks(target.shape[0], tuple(target.shape[-2:]), self.side).to(target.device)
        x = target.masked_fill(hole[:, None], 0.0)
        return x, target, hole, valid

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Masked input ``(B, C, H, W)`` -> reconstruction ``(B, C, H, W)``."""
        return self.decoder(self.encoder.forward_maps(x)[-1], out_size=tuple(x.shape[-2:]))

    def loss(
        self, views: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        x, target, hole, valid = views
        return inpainting_loss(self.reconstruct(x), target, hole, valid, self.context_weight), {}
