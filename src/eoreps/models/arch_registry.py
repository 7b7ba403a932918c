"""The registry of model-zoo architectures (``@register_arch`` in :mod:`eoreps.zoo.architectures` fills it).

It lives in the models layer, below the zoo, so that the backbone registry can say that a name such as
``cnn_s`` is a zoo architecture (not a backbone) without importing the zoo: the built-in names are listed
here with the module that registers them (``lazy``), the way every registry lists its built-ins
(:class:`eoreps.registry.Registry`). Entries are :class:`eoreps.zoo.architectures.ArchEntry`.
"""

from __future__ import annotations

from typing import Any

from eoreps.registry import Registry

BUILTIN_ARCHS = (
    "cnn_s",
    "cnn_s_rgb",
    "cnn_digits",
    "mlp",
    "cnn_ms",
)  # test_arch_registry checks the decorators

ARCHITECTURES: Registry[Any] = Registry(
    "architecture", lazy={n: "eoreps.zoo.architectures" for n in BUILTIN_ARCHS}
)
