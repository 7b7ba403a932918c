"""Segmentation protocols: a U-Net-style decoder (:class:`eoreps.models.heads.UNetDecoder`) on the encoder's
feature maps, scored by mIoU (:func:`eoreps.evaluation.metrics.segmentation_metrics`).

* ``linear`` (frozen encoder): only the decoder trains; the segmentation counterpart of a linear probe;
* ``finetune``: encoder (at the lower backbone learning rate) and decoder train together
  (:func:`eoreps.evaluation.protocols.finetune.run_finetune`, which builds the decoder for ``segment`` tasks);
* ``adapter``: frozen encoder with adapters plus the decoder (:mod:`eoreps.evaluation.protocols.adapter`);
* ``supervised``: encoder and decoder from scratch.
"""

from __future__ import annotations

from eoreps.evaluation.protocols.base import Cell, LinearOptions, TrainOptions
from eoreps.evaluation.protocols.finetune import train_and_test
from eoreps.evaluation.protocols.registry import register_protocol


@register_protocol("linear", tasks=("segment",), options=(LinearOptions, TrainOptions))
def run_frozen_decoder(cell: Cell) -> dict[str, float]:
    """Frozen encoder + trained U-Net decoder (segmentation's ``linear`` protocol)."""
    return train_and_test(cell, 0.0, freeze_encoder=True)
