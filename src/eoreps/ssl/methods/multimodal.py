"""Multimodal contrastive pretraining (Dual-SimCLR, Scheibenreif, Mommert & Borth 2022).

One encoder (and projection head) per modality. The positives are the same location seen by two
modalities; every other sample of the (global) batch, in either modality, is a negative: the
cross-modal NT-Xent over the 2N projected representations (``L(i, j) = -log exp(sim(R_i, R_j)/tau) /
sum_{k != i} exp(sim(R_i, R_k)/tau)``). No augmentation is needed -- the second modality is the second
view; ``augment="flip"`` adds independent D4 flips/rotations per modality, ``"full"`` the SimCLR
augmentation per modality. With ``V > 2`` modalities the loss averages every pair of modalities.

Downstream, take either encoder alone or both (late fusion: concatenate their features), see
:func:`eoreps.ssl.export.load_encoders`. The projection heads are exported too: only their outputs (the
``joint`` space of ``load_encoders(RUN).embed``) align the modalities, e.g. to retrieve S2 with an S1 query.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from eoreps.errors import ConfigError
from eoreps.ssl.losses import NTXent
from eoreps.ssl.methods.base import Batch, SSLMethod, eo_augment
from eoreps.ssl.methods.registry import register_method

AUGMENTS = ("none", "flip", "full")


@register_method("multimodal", encoders="per-modality")
class Multimodal(SSLMethod):
    """Dual-SimCLR for two or more co-registered modalities.

    Args:
        temperature: NT-Xent temperature.
        proj_dim: output size of each projection head.
        augment: ``"none"`` (the paper's setting), ``"flip"`` or ``"full"`` (per modality, independent).
        gather: gather negatives across processes (DDP).
        **kwargs: see :class:`~eoreps.ssl.methods.base.SSLMethod`.
    """

    def __init__(self, temperature: float = 0.2, proj_dim: int = 128, augment: str = "none",
                 gather: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if len(self.modalities) < 2:
            raise ConfigError(f"multimodal pretraining needs at least two modalities, got {self.modalities}; "
                              "e.g. modalities=s2,s1 (or method=simclr for one)")
        if augment not in AUGMENTS:
            raise ConfigError(f"augment '{augment}' unknown; choose one of {', '.join(AUGMENTS)}")
        self.heads = nn.ModuleDict()
        for m in self.modalities:
            enc = self.add_encoder(m, [m])
            d = enc.num_features
            self.heads[m] = self.make_head(
                m, "simclr", input_dim=d, hidden_dim=max(d, proj_dim), output_dim=proj_dim
            )
        self.criterion = NTXent(temperature, gather=gather)
        self.augment_mode = augment
        if augment == "full":
            self.augment = eo_augment(self.image_size)
        elif augment == "flip":
            from eoreps.transforms import RandomFlipRotate

            self.augment = RandomFlipRotate()

    def make_views(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One view per modality ``{m: (B, C_m, H, W)}`` (augmented independently when asked)."""
        if self.augment_mode == "none":
            return {m: batch[m] for m in self.modalities}
        return {m: self.augment({m: batch[m]})[m] for m in self.modalities}

    def project(self, views: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Projections ``(B, proj_dim)``, one per modality, in modality order."""
        return [self.heads[m](self.encoders[m](views[m])) for m in self.modalities]

    def loss(self, views: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        return self.criterion(self.project(views)), {
            "num_candidates": float(self.criterion.last_num_candidates)
        }
