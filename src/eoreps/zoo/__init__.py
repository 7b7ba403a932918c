"""Model zoos: populations of small networks trained vectorized, stored with every checkpoint.

Main entry points: :func:`eoreps.zoo.build.build_zoo` (``eoreps zoo build``),
:class:`eoreps.zoo.modelzoo.ModelZoo` (a zoo as a torch Dataset of (weights, properties)),
:func:`eoreps.zoo.prune.sparsify_zoo` (sparsified twins). See ``docs/zoo.md``.
"""

from eoreps.zoo.modelzoo import ModelZoo

__all__ = ["ModelZoo"]
