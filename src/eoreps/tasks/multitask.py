"""One shared encoder (a fused backbone), several task heads.

``MultiHeadModel(encoder, tasks)`` maps a batch dict to ``{task name: output}``: pooled features feed
classification / multi-label / regression heads, the feature maps a U-Net decoder per segmentation
task. A single-task model is the case ``len(tasks) == 1``; the LightningModule in
:mod:`eoreps.tasks.supervised` trains both, with a weighting strategy from :mod:`eoreps.tasks.weighting`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from eoreps.errors import ConfigError, unknown_name
from eoreps.models.fusion import EarlyFusion, LateFusion
from eoreps.models.heads import AttentionPool, HeteroscedasticHead, MLPHead, RegressionHead, UNetDecoder
from eoreps.tasks.spec import TaskSpec


def build_head(spec: TaskSpec, encoder: EarlyFusion | LateFusion, dropout: float = 0.0,
               hidden: int | None = None, decoder_channels: int = 32) -> nn.Module:
    """The head for ``spec`` on top of ``encoder`` (``num_features`` / ``feature_info``)."""
    if spec.kind in ("classify", "multilabel"):
        return MLPHead(encoder.num_features, spec.num_classes, hidden, dropout)
    if spec.kind == "segment":
        return UNetDecoder(
            [f["num_chs"] for f in encoder.feature_info], spec.num_classes, decoder_channels, dropout
        )
    if spec.heteroscedastic:
        return HeteroscedasticHead(encoder.num_features, 1, hidden, dropout)
    return RegressionHead(encoder.num_features, 1, hidden, dropout)


def last_shared_weight(module: nn.Module) -> list[torch.Tensor]:
    """The weight of the last conv/linear layer of ``module`` (GradNorm's ``W``), as a one-item list."""
    last = None
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            last = m
    if last is None:
        raise ConfigError("the shared encoder has no conv or linear layer; GradNorm needs one")
    return [last.weight]


HEAD_POOLINGS = ("avg", "attention")


class MultiHeadModel(nn.Module):
    """Shared encoder + one head per task.

    Args:
        encoder: an :class:`~eoreps.models.fusion.EarlyFusion` / ``LateFusion`` (batch dict -> features).
        tasks: the task specs (unique names).
        dropout: dropout in every head (MC dropout keeps it active at prediction time).
        hidden: optional hidden width of the MLP heads.
        decoder_channels: width of the U-Net decoders.
        pooling: how image-level heads (classification, multi-label, regression) read the encoder:
            ``avg`` (its pooled features) or ``attention`` (each head its own
            :class:`~eoreps.models.heads.AttentionPool` over the deepest feature map).
    """

    def __init__(self, encoder: EarlyFusion | LateFusion, tasks: Sequence[TaskSpec], dropout: float = 0.0,
                 hidden: int | None = None, decoder_channels: int = 32, pooling: str = "avg") -> None:
        super().__init__()
        names = [t.name for t in tasks]
        if not tasks or len(set(names)) != len(names):
            raise ConfigError(f"tasks {names}: need at least one task and unique names")
        if pooling not in HEAD_POOLINGS:
            raise unknown_name("head pooling", pooling, HEAD_POOLINGS)
        self.encoder = encoder
        self.tasks = list(tasks)
        self.heads = nn.ModuleDict(
            {t.name: build_head(t, encoder, dropout, hidden, decoder_channels) for t in tasks}
        )
        self.pools = nn.ModuleDict()
        if pooling == "attention":
            deepest = encoder.feature_info[-1]["num_chs"]
            if deepest != encoder.num_features:
                raise ConfigError(
                    f"attention pooling needs the deepest feature map to carry all {encoder.num_features} "
                    f"features (it has {deepest} channels); use head_pooling=avg with this encoder"
                )
            self.pools = nn.ModuleDict({t.name: AttentionPool(deepest) for t in tasks if t.kind != "segment"})
        self._needs_maps = any(t.kind == "segment" for t in tasks) or len(self.pools) > 0

    def forward(
        self, batch: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        """Batch dict -> ``{task: output}`` (see :mod:`eoreps.tasks.spec` for the shapes)."""
        if self._needs_maps:
            pooled, maps = self.encoder.forward_all(batch)
        else:
            pooled, maps = self.encoder(batch), []
        out = {}
        for t in self.tasks:
            if t.kind == "segment":
                out[t.name] = self.heads[t.name](maps, tuple(self.encoder.grid_size))
            elif t.name in self.pools:
                out[t.name] = self.heads[t.name](self.pools[t.name](maps[-1]))
            else:
                out[t.name] = self.heads[t.name](pooled)
        return out

    def losses(self, outputs: dict, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{task: scalar loss}`` (weakly supervised tasks read their weak target,
        :attr:`TaskSpec.loss_target`)."""
        return {t.name: t.loss(outputs[t.name], batch[t.loss_target]) for t in self.tasks}

    def shared_parameters(self) -> list[torch.Tensor]:
        """The last shared layer's weight (for GradNorm)."""
        return last_shared_weight(self.encoder)
