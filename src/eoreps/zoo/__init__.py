"""Model zoos: populations of small networks trained vectorized, stored with every checkpoint.

Main entry points: :func:`eoreps.zoo.build.build_zoo` (``eoreps zoo build``),
:class:`eoreps.zoo.modelzoo.ModelZoo` (a zoo as a torch Dataset of (weights, properties)),
:func:`eoreps.zoo.prune.sparsify_zoo` (sparsified twins). See ``docs/zoo.md``.
"""

from typing import Any

__all__ = ["ModelZoo"]


def __getattr__(name: str) -> Any:
    """``eoreps.zoo.ModelZoo`` on first use: importing the package (e.g. for the ``zoo build`` options) stays
    free of torch."""
    if name == "ModelZoo":
        from eoreps.zoo.modelzoo import ModelZoo

        return ModelZoo
    raise AttributeError(f"module 'eoreps.zoo' has no attribute {name!r}")
