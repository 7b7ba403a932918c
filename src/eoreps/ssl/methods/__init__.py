"""Pretraining methods by name: ``get_method("simclr")`` -> the LightningModule class.

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
inpainting       pretext: context encoder, reconstruct a hidden square, no adversarial loss (Pathak et al. 2016)
===============  ==============================================================================
"""

from __future__ import annotations

import importlib

from eoreps.errors import unknown_name
from eoreps.ssl.methods.base import SSLMethod

METHODS: dict[str, str] = {
    "simclr": "eoreps.ssl.methods.simclr:SimCLR",
    "multimodal": "eoreps.ssl.methods.multimodal:Multimodal",
    "moco": "eoreps.ssl.methods.moco:MoCo",
    "byol": "eoreps.ssl.methods.byol:BYOL",
    "dino": "eoreps.ssl.methods.dino:DINO",
    "mae": "eoreps.ssl.methods.mae:MAE",
    "tile2vec": "eoreps.ssl.methods.tile2vec:Tile2Vec",
    "rotation": "eoreps.ssl.methods.rotation:Rotation",
    "jigsaw": "eoreps.ssl.methods.jigsaw:Jigsaw",
    "band-prediction": "eoreps.ssl.methods.band_prediction:BandPrediction",
    "inpainting": "eoreps.ssl.methods.inpainting:Inpainting",
}


def get_method(name: str) -> type[SSLMethod]:
    """The method class registered as ``name`` (one-line error listing the names otherwise)."""
    if name not in METHODS:
        raise unknown_name("pretraining method", name, list(METHODS))
    module, cls = METHODS[name].split(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def method_options(name: str) -> list[str]:
    """The options ``--method-kwargs`` may set for method ``name``: its own constructor arguments (down to
    :class:`SSLMethod`, whose arguments ``run_pretrain`` sets itself) plus the base's ``warmup_frac``."""
    import inspect

    names = {"warmup_frac"}
    for klass in get_method(name).__mro__:
        if klass is SSLMethod:
            break
        if "__init__" in vars(klass):
            params = inspect.signature(klass.__init__).parameters.values()
            names |= {p.name for p in params if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return sorted(names)


def check_method_kwargs(name: str, kwargs: dict[str, object]) -> None:
    """One-line :class:`~eoreps.errors.ConfigError` for a ``--method-kwargs`` key method ``name`` lacks."""
    options = method_options(name)
    for key in kwargs:
        if key not in options:
            raise unknown_name(f"option of method '{name}' (--method-kwargs)", key, options)


__all__ = ["METHODS", "SSLMethod", "check_method_kwargs", "get_method", "method_options"]
