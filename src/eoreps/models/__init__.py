"""Models: backbones by name, fusion, heads, and backbone save/load.

``create_backbone(name, in_chans, **kwargs)`` returns a :class:`Backbone` with ``num_features``,
``feature_info``, ``forward(x) -> (B, num_features)`` and ``forward_maps(x) -> [(B, C_i, H/r_i, W/r_i)]``.
"""

from eoreps.models.base import Backbone
from eoreps.models.io import load_backbone, save_backbone
from eoreps.models.registry import create_backbone, list_backbones, register_backbone

__all__ = [
    "Backbone",
    "create_backbone",
    "list_backbones",
    "load_backbone",
    "register_backbone",
    "save_backbone",
]
