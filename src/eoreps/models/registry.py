"""Backbones by name: ``create_backbone("cnn-small" | "timm:resnet18" | ..., in_chans=...)``.

Built-in names (``list_backbones()``):

* ``cnn-tiny`` / ``cnn-small`` / ``cnn-base``: small ResNet-like CNNs (:mod:`eoreps.models.cnn`),
  ~20 k / ~0.3 M / ~2.8 M parameters, fast on CPU at 32 x 32.
* ``timm:<name>``: any timm model, e.g. ``timm:resnet18``, ``timm:vit_tiny_patch16_224`` with
  ``img_size=32, patch_size=4`` (:mod:`eoreps.models.timm_backbones`).

Other modules add their own with :func:`register_backbone`::

    @register_backbone("my-net")
    def my_net(in_chans: int, **kwargs) -> Backbone: ...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from eoreps.errors import ConfigError
from eoreps.models.arch_registry import ARCHITECTURES
from eoreps.models.base import Backbone
from eoreps.models.cnn import CNN_VARIANTS, create_cnn
from eoreps.registry import Registry

BackboneFactory = Callable[..., Backbone]

BACKBONES: Registry[BackboneFactory] = Registry("backbone")
_TIMM_PREFIX = "timm:"
_TIMM_EXAMPLES = ("timm:resnet18", "timm:resnet50", "timm:vit_tiny_patch16_224", "timm:vit_small_patch16_224",
                  "timm:convnext_atto")


def register_backbone(name: str, factory: BackboneFactory | None = None) -> Any:
    """Register ``factory(in_chans, **kwargs) -> Backbone`` under ``name``; usable as a decorator."""
    if name.startswith(_TIMM_PREFIX):
        raise ConfigError(f"backbone name '{name}': the prefix '{_TIMM_PREFIX}' is reserved for timm models")

    def deco(fn: BackboneFactory) -> BackboneFactory:
        return BACKBONES.add(name, fn)

    return deco(factory) if factory is not None else deco


def list_backbones() -> list[str]:
    """Registered names plus a few ``timm:`` examples (any timm model name works after ``timm:``)."""
    return sorted(BACKBONES.names()) + list(_TIMM_EXAMPLES)


def is_backbone_name(name: str) -> bool:
    """True when ``name`` (any ``-``/``_`` spelling) is a registered backbone or a ``timm:`` name."""
    return name.startswith(_TIMM_PREFIX) or name in BACKBONES


def canonical_backbone_name(name: str) -> str:
    """The registered spelling of backbone ``name`` (``cnn_small`` -> ``cnn-small``); an unknown name raises
    :class:`ConfigError`, pointing at the model-zoo registry when ``name`` is a zoo architecture (the
    zoo's ``cnn_s`` is a tiny layer-list CNN, a different network from the backbone ``cnn-small``)."""
    if name in BACKBONES:
        return BACKBONES.canonical(name)
    from eoreps.errors import unknown_name

    note = (
        f"'{name}' is a model-zoo architecture (eoreps zoo build --arch), not a backbone; "
        f"the nearest backbones are cnn-tiny/cnn-small (see docs/zoo.md)"
        if name in ARCHITECTURES
        else ""
    )
    raise unknown_name("backbone", name, list_backbones(), note)


def create_backbone(name: str, in_chans: int, **kwargs: Any) -> Backbone:
    """Build backbone ``name`` for ``in_chans`` input channels.

    Args:
        name: a registered name or ``"timm:<timm model name>"``.
        in_chans: number of input channels (any band count).
        **kwargs: options of the backbone, e.g. ``drop_rate``; for timm ``img_size``, ``patch_size``,
            ``checkpoint`` (a local weights file).

    Returns:
        A :class:`Backbone`: ``bb(x)`` -> ``(B, bb.num_features)``, ``bb.forward_maps(x)`` -> per-stage
        maps described by ``bb.feature_info``. ``bb.spec`` holds ``name`` and the arguments.
    """
    if name.startswith(_TIMM_PREFIX):
        from eoreps.models.timm_backbones import TimmBackbone

        model_name = name[len(_TIMM_PREFIX):]
        if not model_name:
            raise ConfigError("backbone 'timm:' needs a model name, e.g. 'timm:resnet18'")
        bb: Backbone = TimmBackbone(model_name, in_chans=in_chans, **kwargs)
    else:
        name = canonical_backbone_name(name)
        factory = BACKBONES.get(name)
        try:
            inspect.signature(factory).bind(in_chans, **kwargs)
        except TypeError as e:
            raise ConfigError(
                f"backbone '{name}': invalid option ({e}); check the keyword arguments"
            ) from None
        bb = factory(in_chans, **kwargs)
    bb.spec = {"name": name, "in_chans": in_chans, **{k: _plain(v) for k, v in kwargs.items()}}
    return bb


def _plain(v: Any) -> Any:
    """Make a kwarg JSON-friendly for the saved card (tuples -> lists, paths -> str)."""
    if isinstance(v, tuple):
        return list(v)
    if hasattr(v, "__fspath__"):
        return str(v)
    return v


def _cnn_factory(variant: str) -> BackboneFactory:
    def factory(in_chans: int, widths: Any = None, depths: Any = None, stem_stride: int = 2,
                drop_rate: float = 0.0) -> Backbone:
        opts: dict[str, Any] = {"stem_stride": stem_stride, "drop_rate": drop_rate}
        if widths is not None:
            opts["widths"] = tuple(widths)
        if depths is not None:
            opts["depths"] = tuple(depths)
        return create_cnn(variant, in_chans, **opts)

    factory.__doc__ = f"The {variant} ResNet-like CNN ({CNN_VARIANTS[variant]})."
    return factory


for _variant in CNN_VARIANTS:
    register_backbone(_variant, _cnn_factory(_variant))
