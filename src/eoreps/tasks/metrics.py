"""Per-task metrics (torchmetrics), named as in the tables.

=============  ==========================================================================
kind           metrics
=============  ==========================================================================
classify       ``acc`` (overall accuracy), ``f1`` (macro F1)
multilabel     ``f1_macro``, ``f1_micro``, ``map`` (macro mean average precision)
segment        ``miou`` (mean IoU over classes), ``pixel_acc``; ``iou`` (IoU of the positive class)
               when the task names one (e.g. plume)
regress        ``mae``, ``mse``, ``rmse``, ``r2``, ``mape`` (%, over non-zero targets), in the target's units
=============  ==========================================================================
"""

from __future__ import annotations

import torch
import torchmetrics
from torch import nn
from torchmetrics import classification as C
from torchmetrics import regression as R

from eoreps.data.datasets.base import IGNORE_INDEX
from eoreps.tasks.spec import TaskSpec


class TaskMetrics(nn.Module):
    """Accumulates the metrics of one :class:`TaskSpec`; ``compute()`` -> ``{name: float}``."""

    def __init__(self, spec: TaskSpec) -> None:
        super().__init__()
        self.spec = spec
        k = spec.num_classes
        m: dict[str, torchmetrics.Metric]
        if spec.kind == "classify":
            m = {
                "acc": C.MulticlassAccuracy(k, average="micro"),
                "f1": C.MulticlassF1Score(k, average="macro"),
            }
        elif spec.kind == "multilabel":
            m = {
                "f1_macro": C.MultilabelF1Score(k, average="macro"),
                "f1_micro": C.MultilabelF1Score(k, average="micro"),
                "map": C.MultilabelAveragePrecision(k, average="macro"),
            }
        elif spec.kind == "segment":
            m = {"miou": C.MulticlassJaccardIndex(k, average="macro", ignore_index=IGNORE_INDEX),
                 "pixel_acc": C.MulticlassAccuracy(k, average="micro", ignore_index=IGNORE_INDEX)}
            if spec.positive_class is not None:
                m["iou_per_class"] = C.MulticlassJaccardIndex(k, average="none", ignore_index=IGNORE_INDEX)
        else:
            m = {"mae": R.MeanAbsoluteError(), "mse": R.MeanSquaredError(), "r2": R.R2Score(),
                 "mape": R.MeanAbsolutePercentageError()}
        self.metrics = nn.ModuleDict(m)

    @torch.no_grad()
    def update(self, output, target: torch.Tensor) -> None:
        """Add a batch: ``output`` as the model returns it (model space), ``target`` from the batch."""
        kind = self.spec.kind
        if kind == "regress":
            pred, target = self.spec.to_units(output).float(), target.float()
        elif kind == "multilabel":
            pred, target = torch.sigmoid(output.float()), target.long()
        else:
            pred, target = output.float().argmax(1), target.long()
        for name, m in self.metrics.items():
            if name == "mape":  # percentage error is undefined at a zero target (e.g. a plant switched off)
                keep = target.abs() > 1e-6
                if keep.any():
                    m.update(pred[keep], target[keep])
            else:
                m.update(pred, target)

    def compute(self) -> dict[str, float]:
        """Metric values as floats (``mape`` in %); ``iou`` is the positive class's IoU."""
        out: dict[str, float] = {}
        for name, m in self.metrics.items():
            v = m.compute()
            if name == "iou_per_class":
                out["iou"] = float(v[self.spec.positive_class])
            elif name == "mape":
                out["mape"] = 100.0 * float(v)
            else:
                out[name] = float(v)
        if "mse" in out:
            out["rmse"] = out["mse"] ** 0.5
        return out

    def reset(self) -> None:
        """Clear the accumulated state."""
        for m in self.metrics.values():
            m.reset()
