"""BYOL (Grill et al. 2020): online encoder + projector + predictor regresses an EMA target.

No negatives: the loss is lightly's ``NegativeCosineSimilarity`` between the online prediction of one
view and the target projection of the other, symmetrised. The target (encoder and projector) is an
EMA of the online network, momentum on a cosine schedule to 1. Views: the EO-safe augmentation.
"""

from __future__ import annotations

from typing import Any

import torch

from eoreps.ssl.methods.base import Batch, EMAMixin, SSLMethod, eo_augment, frozen_copy
from eoreps.ssl.methods.registry import register_method


@register_method("byol")
class BYOL(EMAMixin, SSLMethod):
    """BYOL.

    Args:
        momentum: start of the EMA momentum schedule (cosine to 1).
        proj_dim: output size of projector and predictor.
        hidden_dim: hidden width of projector and predictor.
        **kwargs: see :class:`~eoreps.ssl.methods.base.SSLMethod`.
    """

    def __init__(
        self, momentum: float = 0.99, proj_dim: int = 128, hidden_dim: int = 512, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        from lightly.loss import NegativeCosineSimilarity
        from lightly.models.modules import BYOLPredictionHead

        d = self.encoder.num_features
        self.projector = self.make_head(next(iter(self.encoders)), "byol", input_dim=d, hidden_dim=hidden_dim,
                                        output_dim=proj_dim)
        self.predictor = BYOLPredictionHead(proj_dim, hidden_dim, proj_dim)
        self.target_encoder = frozen_copy(self.encoder)
        self.target_projector = frozen_copy(self.projector)
        self.criterion = NegativeCosineSimilarity()
        self.momentum = momentum
        self.ema_pairs = [(self.encoder, self.target_encoder), (self.projector, self.target_projector)]
        self.augment = eo_augment(self.image_size)

    def make_views(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        mods = {m: batch[m] for m in self.modalities}
        return self.stack(self.augment(mods)), self.stack(self.augment(mods))

    def loss(self, views: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        x = torch.cat(views)
        p1, p2 = self.predictor(self.projector(self.encoder(x))).chunk(2)
        with torch.no_grad():
            t1, t2 = self.target_projector(self.target_encoder(x)).chunk(2)
        loss = 0.5 * (self.criterion(p1, t2) + self.criterion(p2, t1))
        return loss, {"momentum": self.ema_momentum()}
