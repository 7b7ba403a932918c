"""Tile2Vec (Jean et al. 2019): nearby tiles should embed closer than distant ones.

Batches are triplets from :class:`eoreps.ssl.data.TripletDataset` (anchor, a neighbour within a few
pixels of it, a tile from another scene); the loss is
``[||f(a) - f(n)||_2 - ||f(a) - f(d)||_2 + m]_+`` (:func:`eoreps.ssl.losses.triplet_loss`) on the
backbone's pooled features, plus the paper's optional L2 penalty on the embeddings. Tiles get
independent D4 flips/rotations.
"""

from __future__ import annotations

from typing import Any

import torch

from eoreps.ssl.losses import triplet_loss
from eoreps.ssl.methods.base import Batch, SSLMethod


class Tile2Vec(SSLMethod):
    """Tile2Vec.

    Args:
        margin: triplet margin ``m``.
        l2_weight: weight of the mean squared embedding norm (0 disables it).
        **kwargs: see :class:`~eoreps.ssl.methods.base.SSLMethod`.
    """

    name = "tile2vec"

    def __init__(self, margin: float = 1.0, l2_weight: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from eoreps.transforms import RandomFlipRotate

        self.margin, self.l2_weight = margin, l2_weight
        self.augment = RandomFlipRotate()

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Triplet batches ``{"anchor": {m: ...}, "neighbor": ..., "distant": ...}`` are normalised part by part."""
        if self.trainer is not None and self.trainer.training and "anchor" in batch:
            return self.make_views({k: self.normalize(v) for k, v in batch.items()})
        return super().on_after_batch_transfer(batch, dataloader_idx)

    def make_views(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(anchor, neighbour, distant)`` tiles ``(B, C, t, t)``, each with its own flip/rotation."""
        return tuple(self.stack(self.augment({m: batch[k][m] for m in self.modalities}))  # type: ignore[return-value]
                     for k in ("anchor", "neighbor", "distant"))

    def on_train_epoch_start(self) -> None:
        ds = getattr(self.trainer.datamodule, "dataset", None) if self.trainer.datamodule is not None else None
        if ds is not None and hasattr(ds, "epoch"):
            ds.epoch = self.current_epoch

    def loss(self, views: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        a, n, d = views
        za, zn, zd = self.encoder(torch.cat([a, n, d])).chunk(3)
        loss = triplet_loss(za, zn, zd, self.margin)
        if self.l2_weight > 0:
            loss = loss + self.l2_weight * (za.pow(2).sum(1) + zn.pow(2).sum(1) + zd.pow(2).sum(1)).mean()
        with torch.no_grad():
            gap = ((za - zd).norm(dim=1) - (za - zn).norm(dim=1)).mean()
        return loss, {"distance_gap": float(gap)}
