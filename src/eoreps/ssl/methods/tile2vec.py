"""Tile2Vec (Jean et al. 2019): nearby tiles should embed closer than distant ones.

Batches are triplets from :class:`eoreps.ssl.data.TripletDataset` (anchor, a neighbour within a few
pixels of it, a tile from another scene); the loss is
``[||f(a) - f(n)||_2 - ||f(a) - f(d)||_2 + m]_+`` (:func:`eoreps.ssl.losses.triplet_loss`) on the
backbone's pooled features, plus the paper's optional L2 penalty on the embeddings. Tiles get
independent D4 flips/rotations.

Its data options (:class:`Tile2VecOptions`: tile size, neighbourhood, scenes) are ``method_kwargs``
like the loss options, e.g. ``--method-kwargs tile_size=16,margin=0.5``; :func:`build_triplet_data`
is the data hook its registration hands to :func:`eoreps.ssl.pretrain.run_pretrain`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from eoreps.ssl.losses import triplet_loss
from eoreps.ssl.methods.base import Batch, SSLMethod
from eoreps.ssl.methods.registry import MethodData, register_method

if TYPE_CHECKING:
    from eoreps.ssl.pretrain import PretrainConfig


@dataclass
class Tile2VecOptions:
    """Triplet sampling.

    Attributes:
        tile_size: side of the anchor, neighbour and distant tiles, px (the encoder's input size).
        neighborhood: largest anchor-neighbour offset per axis, px.
        num_scenes: SimEO scenes generated for ``data: simeo``.
        scene_size: their side, px.
    """

    tile_size: int = 32
    neighborhood: int = 16
    num_scenes: int = 16
    scene_size: int = 256

    #: what ``--quick`` shrinks (each to at most this), unless the run keeps it (``quick_keep``)
    QUICK: ClassVar[dict[str, Any]] = {"num_scenes": lambda v: min(v, 4), "scene_size": lambda v: min(v, 96)}


def build_triplet_data(cfg: PretrainConfig, options: Tile2VecOptions) -> MethodData:
    """Triplets cut from large scenes; the monitor and kNN bank use the training patches.

    SimEO (``simeo`` or a SimEO folder) has scenes of its own; any other source lends its training patches
    as scenes: streamed from its pack (:class:`~eoreps.ssl.data.StreamedTriplets`, each batch's patches
    the scenes) under ``loader="stream"``, else held in memory (``loader="memory"``, a pack given as
    ``data`` included)."""
    from eoreps.data.datasets.packed import PackedDataset
    from eoreps.data.pack_cache import is_packed
    from eoreps.data.simeo import is_simeo_folder
    from eoreps.quick import shrink
    from eoreps.ssl.data import StreamedTriplets, TripletDataset, load_patches, load_scenes

    o = replace(options)
    if cfg.quick:
        shrink(o, Tile2VecOptions.QUICK, cfg.quick_keep)
    data, data_options = cfg.source()
    own = cfg.data == "simeo" or is_simeo_folder(cfg.data)  # scenes are not part of the packed patches
    patches = load_patches(data, cfg.modalities, "train", max_samples=max(cfg.monitor_samples,
                           cfg.knn_train_samples if cfg.knn else 0), seed=cfg.seed, options=data_options)
    if not own and cfg.loader == "stream" and is_packed(data):  # the pack's patches are the scenes, streamed
        streamed = StreamedTriplets(PackedDataset(data, "train", cfg.modalities), cfg.modalities, o.tile_size,
                                    o.neighborhood, cfg.seed, cfg.max_samples, cfg.data)
        return MethodData(streamed, streamed, patches.centre(o.tile_size), streamed.image_size)
    scenes = load_scenes(cfg.data if own else data, cfg.modalities, o.num_scenes, o.scene_size, cfg.seed,
                         cfg.data_options if own else data_options)
    length = None if cfg.max_samples is None else max(cfg.batch_size, cfg.max_samples)
    dataset = TripletDataset(
        scenes, tile=o.tile_size, neighborhood=o.neighborhood, length=length, seed=cfg.seed
    )
    return MethodData(dataset, scenes, patches, (o.tile_size, o.tile_size))


@register_method("tile2vec", data_kind="triplets", build_data=build_triplet_data, options=Tile2VecOptions)
class Tile2Vec(SSLMethod):
    """Tile2Vec.

    Args:
        margin: triplet margin ``m``.
        l2_weight: weight of the mean squared embedding norm (0 disables it).
        **kwargs: see :class:`~eoreps.ssl.methods.base.SSLMethod`.
    """

    def __init__(self, margin: float = 1.0, l2_weight: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from eoreps.transforms import RandomFlipRotate

        self.margin, self.l2_weight = margin, l2_weight
        self.augment = RandomFlipRotate()

    def train_views(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Triplet batches ``{"anchor": {m: ...}, "neighbor": ..., "distant": ...}`` are normalised
        part by part."""
        return self.make_views({k: self.normalize(v) for k, v in batch.items()})

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Triplet batches go through :meth:`train_views`; others (monitors) pass as in the base class."""
        if self.trainer is not None and self.trainer.training and "anchor" in batch:
            return self.train_views(batch)
        return super().on_after_batch_transfer(batch, dataloader_idx)

    def probe_batch(self, batch_size: int, gen: torch.Generator) -> Batch:
        """A random triplet batch (three tiles per sample at the training size)."""
        base = super().probe_batch
        return {k: base(batch_size, gen) for k in ("anchor", "neighbor", "distant")}

    def make_views(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(anchor, neighbour, distant)`` tiles ``(B, C, t, t)``, each with its own flip/rotation."""
        return tuple(self.stack(self.augment({m: batch[k][m] for m in self.modalities}))  # type: ignore[return-value]
                     for k in ("anchor", "neighbor", "distant"))

    def on_train_epoch_start(self) -> None:
        ds = (
            getattr(self.trainer.datamodule, "dataset", None) if self.trainer.datamodule is not None else None
        )
        if ds is not None and hasattr(ds, "epoch"):
            ds.epoch = self.current_epoch

    def loss(
        self, views: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        a, n, d = views
        za, zn, zd = self.encoder(torch.cat([a, n, d])).chunk(3)
        loss = triplet_loss(za, zn, zd, self.margin)
        if self.l2_weight > 0:
            loss = loss + self.l2_weight * (za.pow(2).sum(1) + zn.pow(2).sum(1) + zd.pow(2).sum(1)).mean()
        with torch.no_grad():
            gap = ((za - zd).norm(dim=1) - (za - zn).norm(dim=1)).mean()
        return loss, {"distance_gap": gap}
