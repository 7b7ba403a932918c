"""MoCo v2 (He et al. 2020; Chen, Fan, Girshick & He 2020): momentum key encoder, queue of negatives.

Queries come from the online encoder and head, keys from their EMA copies (momentum on a cosine
schedule to 1). lightly's ``NTXentLoss`` with a memory bank is the InfoNCE loss over the positive
key and a queue of past keys (gathered across processes before they are enqueued); the loss is
symmetrised over the two views. Views: the SimCLR EO-safe augmentation.
"""

from __future__ import annotations

from typing import Any

import torch

from eoreps.ssl.methods.base import Batch, EMAMixin, SSLMethod, eo_augment, frozen_copy
from eoreps.ssl.methods.registry import register_method


@register_method("moco")
class MoCo(EMAMixin, SSLMethod):
    """MoCo v2.

    Args:
        temperature: InfoNCE temperature.
        queue_size: number of negatives kept in the queue.
        momentum: start of the EMA momentum schedule (cosine to 1).
        proj_dim: output size of the projection head.
        **kwargs: see :class:`~eoreps.ssl.methods.base.SSLMethod`.
    """


    def __init__(self, temperature: float = 0.2, queue_size: int = 1024, momentum: float = 0.99,
                 proj_dim: int = 128, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from lightly.loss import NTXentLoss

        d = self.encoder.num_features
        self.head = self.make_head(
            next(iter(self.encoders)), "moco", input_dim=d, hidden_dim=max(d, proj_dim), output_dim=proj_dim
        )
        self.key_encoder = frozen_copy(self.encoder)
        self.key_head = frozen_copy(self.head)
        self.criterion = NTXentLoss(temperature=temperature, memory_bank_size=(queue_size, proj_dim),
                                    gather_distributed=True)
        self.momentum = momentum
        self.ema_pairs = [(self.encoder, self.key_encoder), (self.head, self.key_head)]
        self.augment = eo_augment(self.image_size)

    def make_views(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        mods = {m: batch[m] for m in self.modalities}
        return self.stack(self.augment(mods)), self.stack(self.augment(mods))

    def loss(self, views: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        x1, x2 = views
        q1, q2 = self.head(self.encoder(torch.cat([x1, x2]))).chunk(2)
        with torch.no_grad():
            k1, k2 = self.key_head(self.key_encoder(torch.cat([x1, x2]))).chunk(2)
        loss = 0.5 * (self.criterion(q1, k2) + self.criterion(q2, k1))
        return loss, {"momentum": self.ema_momentum()}
