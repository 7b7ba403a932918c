"""Pretraining methods by name: ``get_method("simclr")`` -> the LightningModule class.

Registered with ``@register_method`` (:mod:`eoreps.ssl.methods.registry`).

===============  ==============================================================================
name             method
===============  ==============================================================================
simclr           SimCLR: two EO-safe augmented views, NT-Xent (Chen et al. 2020)
multimodal       Dual-SimCLR: one encoder per modality, cross-modal NT-Xent (Scheibenreif et al. 2022)
moco             MoCo v2: momentum key encoder and a queue of negatives (Chen et al. 2020)
byol             BYOL: predictor and EMA target, no negatives (Grill et al. 2020)
dino             DINO: multi-crop self-distillation, centring and sharpening (Caron et al. 2021)
mae              MAE: ViT, 75 % of patches masked, loss on masked patches (He et al. 2022)
tile2vec         Tile2Vec: triplets of anchor, neighbour, distant tiles (Jean et al. 2019)
rotation         pretext: predict the 0/90/180/270-degree rotation of an image (Gidaris et al. 2018)
jigsaw           pretext: order of 3x3 shuffled tiles, max-Hamming permutations (Noroozi & Favaro 2016)
band-prediction  pretext: held-out S2 bands predicted from the others (multispectral colorization,
                 Zhang et al. 2016)
inpainting       pretext: context encoder, reconstruct a hidden square, no adversarial loss
                 (Pathak et al. 2016)
===============  ==============================================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eoreps.ssl.methods.registry import (
    METHODS,
    MethodData,
    MethodInfo,
    build_patch_data,
    check_method_kwargs,
    list_methods,
    method_info,
    method_options,
    register_method,
)

if TYPE_CHECKING:
    from eoreps.ssl.methods.base import SSLMethod


def get_method(name: str) -> type[SSLMethod]:
    """The LightningModule class (an :class:`SSLMethod`) registered as ``name``; one-line error otherwise."""
    return method_info(name).cls


def __getattr__(name: str) -> Any:  # SSLMethod imports lightning: only when asked for
    if name == "SSLMethod":
        from eoreps.ssl.methods.base import SSLMethod

        return SSLMethod
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["METHODS", "MethodData", "MethodInfo", "SSLMethod", "build_patch_data", "check_method_kwargs",
           "get_method", "list_methods", "method_info", "method_options", "register_method"]
