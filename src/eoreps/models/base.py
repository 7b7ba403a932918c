"""The common face of every backbone: pooled features and per-stage feature maps.

A backbone maps an image ``x`` of shape ``(B, in_chans, H, W)`` to

* ``forward(x)`` -> ``(B, num_features)`` pooled features (classification / regression heads);
* ``forward_maps(x)`` -> list of ``(B, C_i, H / r_i, W / r_i)`` maps, one per entry of
  ``feature_info`` (segmentation decoders), ``C_i = feature_info[i]["num_chs"]``,
  ``r_i = feature_info[i]["reduction"]`` (sizes are rounded down where ``H`` is not a multiple);
* ``forward_all(x)`` -> ``(pooled, maps)`` from one pass (multi-task models need both).

``spec`` records how the backbone was built (name and keyword arguments) so that
:func:`eoreps.models.io.load_backbone` can rebuild it from a saved card.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Backbone(nn.Module):
    """Base class of eoreps backbones (see the module docstring for the contract).

    Attributes:
        num_features: size of the pooled feature vector.
        feature_info: per stage ``{"num_chs": int, "reduction": int}``, as timm's ``feature_info``.
        in_chans: number of input channels.
        spec: ``{"name": registry name, **create kwargs}``, enough to rebuild the backbone.
    """

    num_features: int
    feature_info: list[dict[str, int]]
    in_chans: int
    spec: dict[str, Any]

    def __init__(self) -> None:
        super().__init__()
        self.spec = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_chans, H, W)`` -> ``(B, num_features)``."""
        return self.forward_all(x)[0]

    def forward_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(B, in_chans, H, W)`` -> per-stage maps ``(B, C_i, H / r_i, W / r_i)``."""
        return self.forward_all(x)[1]

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Pooled features ``(B, num_features)`` and the per-stage maps from a single pass."""
        raise NotImplementedError

    @property
    def num_params(self) -> int:
        """Number of parameters."""
        return sum(p.numel() for p in self.parameters())
