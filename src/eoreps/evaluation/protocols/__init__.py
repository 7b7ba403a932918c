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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eoreps.errors import ConfigError, unknown_name
from eoreps.evaluation.protocols.base import (
    AdapterOptions,
    Cell,
    KnnOptions,
    LinearOptions,
    ProtocolOptions,
    TrainOptions,
)

PROTOCOLS = ("linear", "knn", "finetune", "adapter", "supervised")


def _runner(protocol: str, kind: str) -> Callable[[Cell], dict[str, Any]]:
    if protocol == "linear":
        if kind == "segment":
            from eoreps.evaluation.protocols.segment import run_frozen_decoder

            return run_frozen_decoder
        from eoreps.evaluation.protocols.linear import run_linear

        return run_linear
    if protocol == "knn":
        from eoreps.evaluation.protocols.knn import run_knn

        return run_knn
    if protocol == "finetune":
        from eoreps.evaluation.protocols.finetune import run_finetune

        return run_finetune
    if protocol == "adapter":
        from eoreps.evaluation.protocols.adapter import run_adapter

        return run_adapter
    if protocol == "supervised":
        from eoreps.evaluation.protocols.finetune import run_supervised

        return run_supervised
    raise unknown_name("protocol", protocol, PROTOCOLS)


def check_protocol(protocol: str, method_kind: str, task: str) -> None:
    """Raise :class:`ConfigError` for a combination that does not exist."""
    if protocol not in PROTOCOLS:
        raise unknown_name("protocol", protocol, PROTOCOLS)
    if (protocol == "supervised") != (method_kind == "supervised"):
        raise ConfigError(f"protocol '{protocol}' does not apply to a {method_kind} method; supervised methods use "
                          "protocol 'supervised' only, representation methods linear / knn / finetune / adapter")
    if protocol == "knn" and task == "segment":
        raise ConfigError("kNN has no segmentation variant; use linear (frozen decoder), finetune or adapter")


def run_protocol(cell: Cell) -> dict[str, Any]:
    """Run ``cell.protocol`` on ``cell`` and return its test metrics and bookkeeping."""
    check_protocol(cell.protocol, cell.method.kind, cell.data.task.kind)
    return _runner(cell.protocol, cell.data.task.kind)(cell)


__all__ = ["AdapterOptions", "Cell", "KnnOptions", "LinearOptions", "PROTOCOLS", "ProtocolOptions", "TrainOptions",
           "check_protocol", "run_protocol"]
