"""SimCLR (Chen et al. 2020): two EO-safe augmented views, NT-Xent over the 2N projections.

Views: random resized crop, D4 flips/rotations, per-band gain/offset (:func:`eo_augment`), drawn
per sample on the training device. The projection head is lightly's ``SimCLRProjectionHead``.
With several modalities the single encoder reads them stacked along channels (early fusion) and
both views get the same geometric transform per modality stack.
"""

from __future__ import annotations

from typing import Any

import torch

from eoreps.ssl.losses import NTXent
from eoreps.ssl.methods.base import Batch, SSLMethod, eo_augment
from eoreps.ssl.methods.registry import register_method


@register_method("simclr")
class SimCLR(SSLMethod):
    """SimCLR.

    Args:
        temperature: NT-Xent temperature.
        proj_dim: output size of the projection head.
        crop_scale: area range of the random resized crop.
        gather: gather negatives across processes (DDP).
        **kwargs: see :class:`~eoreps.ssl.methods.base.SSLMethod`.
    """

    def __init__(
        self,
        temperature: float = 0.2,
        proj_dim: int = 128,
        crop_scale: tuple[float, float] = (0.35, 1.0),
        gather: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        d = self.encoder.num_features
        key = next(iter(self.encoders))
        self.head = self.make_head(
            key, "simclr", input_dim=d, hidden_dim=max(d, proj_dim), output_dim=proj_dim
        )
        self.criterion = NTXent(temperature, gather=gather)
        self.augment = eo_augment(self.image_size, scale=tuple(crop_scale))

    def make_views(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Two augmented views ``(B, C, H, W)`` of the stacked modalities."""
        mods = {m: batch[m] for m in self.modalities}
        return self.stack(self.augment(mods)), self.stack(self.augment(mods))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> projections ``(B, proj_dim)``."""
        return self.head(self.encoder(x))

    def loss(self, views: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        x1, x2 = views
        z = self.project(torch.cat([x1, x2], dim=0))  # one pass over both views
        z1, z2 = z.chunk(2)
        return self.criterion([z1, z2]), {"num_candidates": float(self.criterion.last_num_candidates)}
