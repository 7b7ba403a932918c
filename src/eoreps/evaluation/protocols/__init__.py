"""Evaluation protocols by name: ``run_protocol(cell)`` -> test metrics of one cell.

=============  ==================================================  =========================================
protocol       classify / multilabel                               segment
=============  ==================================================  =========================================
``linear``     frozen features + logistic regression (C on val)    frozen encoder + U-Net decoder
``knn``        frozen features + weighted cosine kNN               (not available)
``finetune``   encoder (lower lr) + new linear head                encoder (lower lr) + U-Net decoder
``adapter``    frozen encoder + spectral / LoRA adapter + head     same with a U-Net decoder
``supervised`` from scratch, end to end (supervised methods only)  same with a U-Net decoder
=============  ==================================================  =========================================

Each runner registers itself with ``@register_protocol`` (:mod:`eoreps.evaluation.protocols.registry`),
declaring its tasks, the method kinds it evaluates and the options it reads.
"""

from __future__ import annotations

from typing import Any

from eoreps.evaluation.protocols.base import (
    AdapterOptions,
    Cell,
    KnnOptions,
    LinearOptions,
    ProtocolOptions,
    TrainOptions,
)
from eoreps.evaluation.protocols.registry import (
    PROTOCOL_REGISTRY,
    ProtocolInfo,
    check_protocol,
    protocol_info,
    protocol_runner,
    register_protocol,
)

PROTOCOLS = tuple(PROTOCOL_REGISTRY.names())  # the built-ins (study grids, --protocol)


def run_protocol(cell: Cell) -> dict[str, Any]:
    """Run ``cell.protocol`` on ``cell`` and return its test metrics and bookkeeping."""
    check_protocol(cell.protocol, cell.method.kind, cell.data.task.kind)
    return protocol_runner(cell.protocol, cell.data.task.kind)(cell)


__all__ = [
    "AdapterOptions",
    "Cell",
    "KnnOptions",
    "LinearOptions",
    "PROTOCOLS",
    "PROTOCOL_REGISTRY",
    "ProtocolInfo",
    "ProtocolOptions",
    "TrainOptions",
    "check_protocol",
    "protocol_info",
    "protocol_runner",
    "register_protocol",
    "run_protocol",
]
