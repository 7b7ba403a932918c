"""The supervised LightningModule: fused encoder + task heads + a task-weighting strategy.

One class trains every supervised setting: a single task (``classify``, ``multilabel``, ``segment``,
``regress``) is a one-head model with weight 1; several tasks share the encoder and combine their losses
with a strategy from :mod:`eoreps.tasks.weighting`. Logged per epoch (CSV logger):

* ``train/loss``, ``train/<task>_loss``, ``weight/<task>``;
* ``val/loss`` (the unweighted sum of task losses: comparable across strategies; early stopping and
  checkpoints monitor it) and ``val/<task>/<metric>`` (see :mod:`eoreps.tasks.metrics`).

Batches are dicts of normalised modality tensors plus targets (:mod:`eoreps.tasks.data`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import lightning as L
import torch

from eoreps.models.fusion import InputSpec, build_encoder
from eoreps.optim import adamw
from eoreps.tasks.metrics import TaskMetrics
from eoreps.tasks.multitask import MultiHeadModel
from eoreps.tasks.spec import TaskSpec
from eoreps.tasks.weighting import GradNorm, create_weighting

if TYPE_CHECKING:
    from eoreps.precision_probe import Workload


class SupervisedModule(L.LightningModule):
    """Train one or several tasks on a fused encoder.

    Args:
        tasks: task specs (dicts are accepted, as stored in checkpoints).
        inputs: input specs of the modalities (dicts accepted).
        backbone: backbone registry name.
        fusion: ``"early"`` or ``"late"``.
        grid_size: ``(H, W)`` of the input grid / segmentation output.
        share_weights: late fusion with one shared backbone.
        weighting: ``fixed`` | ``uncertainty`` | ``dwa`` | ``gradnorm``.
        task_weights: weights for ``fixed`` (default ``1/K`` each; a single task gets 1).
        lr, weight_decay: AdamW settings; the learning rate follows a cosine schedule over the epochs.
        dropout: dropout in the heads (needed for MC dropout).
        hidden: hidden width of the MLP heads (``None``: linear heads).
        decoder_channels: U-Net decoder width.
        backbone_kwargs: extra options for :func:`eoreps.models.create_backbone`.
        channels_last: convert the model to channels-last memory format (faster convolutions on CPU).
        head_pooling: ``avg`` or ``attention`` pooling for image-level heads (:class:`MultiHeadModel`).
    """

    def __init__(
        self,
        tasks: Sequence[TaskSpec | dict[str, Any]],
        inputs: Sequence[InputSpec | dict[str, Any]],
        backbone: str = "cnn-small",
        fusion: str = "early",
        grid_size: Sequence[int] = (32, 32),
        share_weights: bool = False,
        weighting: str = "fixed",
        task_weights: Sequence[float] | None = None,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        dropout: float = 0.0,
        hidden: int | None = None,
        decoder_channels: int = 32,
        backbone_kwargs: dict[str, Any] | None = None,
        channels_last: bool = False,
        head_pooling: str = "avg",
    ) -> None:
        super().__init__()
        task_specs = [t if isinstance(t, TaskSpec) else TaskSpec(**t) for t in tasks]
        input_specs = [s if isinstance(s, InputSpec) else InputSpec(**s) for s in inputs]
        self.save_hyperparameters(
            {
                "tasks": [dataclasses.asdict(t) for t in task_specs],
                "inputs": [dataclasses.asdict(s) for s in input_specs],
                "backbone": backbone,
                "fusion": fusion,
                "grid_size": list(grid_size),
                "share_weights": share_weights,
                "weighting": weighting,
                "task_weights": list(task_weights) if task_weights is not None else None,
                "lr": lr,
                "weight_decay": weight_decay,
                "dropout": dropout,
                "hidden": hidden,
                "decoder_channels": decoder_channels,
                "backbone_kwargs": dict(backbone_kwargs or {}),
                "channels_last": channels_last,
                "head_pooling": head_pooling,
            }
        )
        encoder = build_encoder(fusion, input_specs, backbone, tuple(grid_size), share_weights=share_weights,
                                **(backbone_kwargs or {}))
        self.model = MultiHeadModel(encoder, task_specs, dropout=dropout, hidden=hidden,
                                    decoder_channels=decoder_channels, pooling=head_pooling)
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        names = [t.name for t in task_specs]
        if weighting == "fixed" and task_weights is None and len(names) == 1:
            task_weights = [1.0]
        self.weighting = create_weighting(weighting, names, weights=task_weights,
                                          regression=[t.is_regression for t in task_specs])
        self.task_specs = task_specs
        self.val_metrics = torch.nn.ModuleDict({t.name: TaskMetrics(t) for t in task_specs})
        self.test_metrics = torch.nn.ModuleDict({t.name: TaskMetrics(t) for t in task_specs})
        self._epoch_sums: dict[str, float] = {}
        self._epoch_count = 0

    def precision_workload(self, example: dict[str, Any], batch_size: int) -> Workload:
        """The step ``--precision auto`` times (:mod:`eoreps.precision_probe`): the whole model (backbone and
        heads, channels-last when the run converts it; inputs fed as the run feeds them, NCHW) on
        ``batch_size`` samples shaped like ``example`` (one normalised sample): Gaussian noise for
        continuous inputs, the example repeated for categorical ones (class indices the model one-hot
        encodes)."""
        from eoreps.precision_probe import Workload, image_label

        gen = torch.Generator().manual_seed(0)  # the run's random state is left alone
        batch, labels = {}, []
        for spec in (InputSpec(**d) for d in self.hparams["inputs"]):
            x = torch.as_tensor(example[spec.name])
            if spec.num_classes is None and x.is_floating_point():
                batch[spec.name] = torch.randn(batch_size, *x.shape, generator=gen)
            else:
                batch[spec.name] = x.unsqueeze(0).expand(batch_size, *x.shape).clone()
            labels.append(image_label(self.hparams["backbone"], x.shape[0], x.shape[1:], batch_size)
                          if x.dim() == 3 else f"{spec.name} {x.shape[0]} b{batch_size}")
        # keyed by the model's structure (eoreps.precision_probe.structure), not by hand-picked options
        return Workload([(self.model, batch)], " + ".join(labels),
                        channels_last=bool(self.hparams["channels_last"]))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Batch dict -> ``{task: output}`` (model space; see :meth:`TaskSpec.to_units`)."""
        return self.model(batch)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        outputs = self.model(batch)
        losses = self.model.losses(outputs, batch)
        shared = self.model.shared_parameters() if isinstance(self.weighting, GradNorm) else None
        total, weights = self.weighting(losses, shared)
        bs = _batch_size(batch)
        self.log("train/loss", total, on_step=False, on_epoch=True, batch_size=bs)
        for k, v in losses.items():
            self.log(f"train/{k}_loss", v, on_step=False, on_epoch=True, batch_size=bs)
            self.log(f"weight/{k}", weights[k], on_step=False, on_epoch=True, batch_size=bs)
            self._epoch_sums[k] = self._epoch_sums.get(k, 0.0) + float(v.detach())
        self._epoch_count += 1
        return total

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.weighting.after_optimizer_step()

    def on_train_epoch_end(self) -> None:
        if self._epoch_count:
            self.weighting.on_epoch_end({k: v / self._epoch_count for k, v in self._epoch_sums.items()})
        self._epoch_sums, self._epoch_count = {}, 0

    def _eval_step(self, batch: dict[str, Any], stage: str, metrics: torch.nn.ModuleDict) -> None:
        outputs = self.model(batch)
        losses = self.model.losses(outputs, batch)
        self.log(
            f"{stage}/loss", sum(losses.values()), on_step=False, on_epoch=True, batch_size=_batch_size(batch)
        )
        for t in self.task_specs:
            metrics[t.name].update(outputs[t.name], batch[t.target])

    def _eval_epoch_end(self, stage: str, metrics: torch.nn.ModuleDict) -> None:
        for name, m in metrics.items():
            for k, v in m.compute().items():
                self.log(f"{stage}/{name}/{k}", v)
            m.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val", self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val", self.val_metrics)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "test", self.test_metrics)

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test", self.test_metrics)

    def configure_optimizers(self) -> Any:
        decay = [p for n, p in self.model.named_parameters() if p.ndim > 1]
        no_decay = [p for n, p in self.model.named_parameters() if p.ndim <= 1]
        groups = [{"params": decay, "weight_decay": self.hparams.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        extra = list(self.weighting.parameters())
        if extra:
            groups.append({"params": extra, "weight_decay": 0.0})
        opt = adamw(groups, lr=self.hparams.lr, trainer=self._trainer)
        epochs = int(getattr(self.trainer, "max_epochs", None) or 1) if self._trainer is not None else 1
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


def _batch_size(batch: dict[str, Any]) -> int:
    for v in batch.values():
        if isinstance(v, torch.Tensor):
            return int(v.shape[0])
    return 1


@torch.no_grad()
def evaluate(module: SupervisedModule, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Metrics of ``module`` (eval mode) over ``batches``: ``{"<task>/<metric>": value}``."""
    module.eval()
    metrics = {t.name: TaskMetrics(t) for t in module.task_specs}
    n = 0
    for batch in batches:
        outputs = module.model(batch)
        for t in module.task_specs:
            metrics[t.name].update(outputs[t.name], batch[t.target])
        n += _batch_size(batch)
    out = {"n": float(n)}
    for name, m in metrics.items():
        out.update({f"{name}/{k}": v for k, v in m.compute().items()})
    return out
