"""What every pretraining method shares: encoders, batched normalisation, optimiser, schedules.

A method is a LightningModule. Its batches arrive raw (physical units, NaN = no data) from
:mod:`eoreps.ssl.data`; ``on_after_batch_transfer`` normalises them on the training device
(:class:`eoreps.data.stats.Normalizer`: ``(x - mean) / std``, NaN -> 0) and calls
:meth:`SSLMethod.make_views`, where a method draws its batched augmentations. ``training_step``
then only runs models and the loss (:meth:`SSLMethod.loss`).

Encoders: a method has one or more :class:`~eoreps.models.base.Backbone` in ``self.encoders``
(``nn.ModuleDict``) and ``self.encoder_inputs`` says which modalities each one reads, stacked along
channels in that order (single-encoder methods stack every pretraining modality: early fusion;
the multimodal method has one encoder per modality). These are what gets exported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import lightning as L
import torch
from torch import nn

from eoreps.data.stats import BandStats, Normalizer
from eoreps.errors import ConfigError
from eoreps.models import Backbone, create_backbone
from eoreps.optim import adamw, grad_scaler
from eoreps.ssl.heads import HeadSpec

if TYPE_CHECKING:
    from eoreps.precision_probe import Workload

Batch = dict[str, Any]


class SSLMethod(L.LightningModule):
    """Base class of the pretraining methods.

    Args:
        modalities: pretraining modalities, e.g. ``["s2", "s1"]``.
        in_chans: channels per modality.
        stats: normalisation statistics (``BandStats.to_dict()``), stored in checkpoints.
        backbone: backbone name for :func:`eoreps.models.create_backbone`.
        backbone_kwargs: its options (e.g. ``{"img_size": 32, "patch_size": 4}`` for a ViT).
        image_size: ``(H, W)`` of the training images.
        lr: peak learning rate of AdamW (after a linear warmup, then cosine decay to 0).
        weight_decay: AdamW weight decay (not applied to norms and biases).
        warmup_frac: share of the steps spent warming up.
        max_steps: total optimisation steps (the schedules' length).
    """

    name: ClassVar[str] = ""
    single_encoder: ClassVar[bool] = True
    #: the backbone ``eoreps pretrain`` uses when ``--backbone`` is not given
    default_backbone: ClassVar[str] = "cnn-small"

    def __init__(self, modalities: Sequence[str], in_chans: Mapping[str, int], stats: Mapping[str, Any],
                 backbone: str = "cnn-small", backbone_kwargs: Mapping[str, Any] | None = None,
                 image_size: Sequence[int] = (32, 32), lr: float = 1e-3, weight_decay: float = 1e-4,
                 warmup_frac: float = 0.05, max_steps: int = 1000) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.modalities = list(modalities)
        missing = [m for m in self.modalities if m not in in_chans]
        if missing:
            raise ConfigError(f"no channel count for modalities {missing}")
        self.in_chans = {m: int(in_chans[m]) for m in self.modalities}
        self.band_stats = BandStats.from_dict(dict(stats), source="checkpoint statistics")
        self.normalizer = Normalizer(self.band_stats)
        self.backbone_name = backbone
        self.backbone_kwargs = dict(backbone_kwargs or {})
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.lr, self.weight_decay, self.warmup_frac, self.max_steps = (
            lr,
            weight_decay,
            warmup_frac,
            max_steps,
        )
        self.encoders = nn.ModuleDict()
        self.encoder_inputs: dict[str, list[str]] = {}
        self._joint_heads: dict[str, tuple[nn.Module, HeadSpec]] = {}  # exported beside their encoders
        # sum (a detached tensor on the training device, or a float) and count of the loss() extras this epoch
        self._epoch_logs: dict[str, tuple[torch.Tensor | float, int]] = {}
        if self.single_encoder:
            self.add_encoder("+".join(self.modalities), self.modalities)

    # ------------------------------------------------------------------------------- encoders
    def add_encoder(self, key: str, modalities: Sequence[str]) -> Backbone:
        """Create a backbone reading ``modalities`` (channels stacked) and register it as ``key``."""
        bb = create_backbone(self.backbone_name, in_chans=sum(self.in_chans[m] for m in modalities),
                             **self.backbone_kwargs)
        self.encoders[key] = bb
        self.encoder_inputs[key] = list(modalities)
        return bb

    def make_head(self, key: str, kind: str, **kwargs: Any) -> nn.Module:
        """A projection head (:class:`~eoreps.ssl.heads.HeadSpec` ``kind`` with ``kwargs``) whose output is
        the joint embedding space of encoder ``key``; the export saves it beside the encoder."""
        spec = HeadSpec(kind, dict(kwargs))
        head = spec.build()
        self._joint_heads[key] = (head, spec)
        return head

    def projection_heads(self) -> dict[str, tuple[nn.Module, HeadSpec]]:
        """Encoder key -> (projection head, its spec) for the heads made with :meth:`make_head` (none for
        methods without a projection: MAE, the pretext tasks, Tile2Vec)."""
        return dict(self._joint_heads)

    @property
    def encoder(self) -> Backbone:
        """The first (for single-encoder methods: the only) encoder."""
        return next(iter(self.encoders.values()))  # type: ignore[return-value]

    def stack(self, batch: Mapping[str, torch.Tensor], key: str | None = None) -> torch.Tensor:
        """Channels of encoder ``key``'s modalities: ``(B, sum C_m, H, W)``."""
        mods = self.encoder_inputs[key] if key is not None else next(iter(self.encoder_inputs.values()))
        xs = [batch[m] for m in mods]
        return xs[0] if len(xs) == 1 else torch.cat(xs, dim=1)

    @torch.no_grad()
    def embed(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Backbone features of a *normalised* batch, per encoder: ``{key: (B, num_features)}``."""
        return {k: enc(self.stack(batch, k)) for k, enc in self.encoders.items()}

    def precision_workload(self, batch_size: int) -> Workload:
        """The step ``--precision auto`` times (:mod:`eoreps.precision_probe`): this method's own training
        step (:class:`TrainStep`: :meth:`train_views` then :meth:`loss`, so targets/keys, projectors,
        predictors, DINO's local crops, MAE's masking and decoder, Jigsaw's tiles all run) on a random raw
        batch of ``batch_size`` samples at the training size (:meth:`probe_batch`). The prober deep-copies
        the step, so this method's weights are untouched; the EMA update after a step is left out."""
        from eoreps.precision_probe import Workload, image_label, shapes_of

        gen = torch.Generator().manual_seed(0)  # the run's random state is left alone
        batch = self.probe_batch(batch_size, gen)
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            views = shapes_of(self.train_views(batch))  # part of the cache key: crops, tiles, masks, ...
        chans = sum(self.in_chans[m] for m in self.modalities)
        return Workload([(TrainStep(self), batch)], image_label(self.backbone_name, chans, self.image_size,
                                                                batch_size) + f" {self.name}",
                        spec={"views": views})

    def probe_batch(self, batch_size: int, gen: torch.Generator) -> Batch:
        """A random raw batch as the loader delivers it: ``{modality: (B, C, H, W)}`` at the training size."""
        return {m: torch.randn(batch_size, self.in_chans[m], *self.image_size, generator=gen)
                for m in self.modalities}

    # ---------------------------------------------------------------------------------- batches
    def normalize(self, batch: Mapping[str, Any]) -> Batch:
        """Normalise the pretraining modalities of a batch (NaN -> 0, ``valid_<m>`` masks added)."""
        out = self.normalizer({k: v for k, v in batch.items() if k in self.modalities})
        for k, v in batch.items():
            if k not in out:
                out[k] = v
        return out

    def make_views(self, batch: Batch) -> Any:
        """Augmented views of a normalised batch (method specific; default: the batch itself)."""
        return batch

    def train_views(self, batch: Batch) -> Any:
        """The views a training step gets from a raw batch: normalised, then :meth:`make_views`."""
        return self.make_views(self.normalize(batch))

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Normalise, then draw views on the training device (batched, no per-sample work in workers)."""
        if self.trainer is not None and self.trainer.training:
            return self.train_views(batch)
        return batch

    # ---------------------------------------------------------------------------------- training
    def loss(self, views: Any) -> tuple[torch.Tensor, Mapping[str, torch.Tensor | float]]:
        """Loss of one batch of views and extra values to log (0-d tensors, left on the device, or floats)."""
        raise NotImplementedError

    def training_step(self, views: Any, batch_idx: int) -> torch.Tensor:
        loss, logs = self.loss(views)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{self.name}: non-finite loss at step {self.global_step}; "
                                     "lower lr or check the data for extreme values")
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True)
        # the extras are epoch means: summed here, logged once per epoch (on_train_epoch_end), since each
        # Lightning log call costs ~0.5 ms of host work per step (profiled, issue 25); the mean is unchanged.
        # Tensors are summed on their device: float() here would wait for the GPU at every step
        for k, v in logs.items():
            total, n = self._epoch_logs.get(k, (0.0, 0))
            self._epoch_logs[k] = (total + (v.detach().float() if isinstance(v, torch.Tensor) else v), n + 1)
        return loss

    def on_train_epoch_end(self) -> None:
        """Log this epoch's means of the :meth:`loss` extras (``train/<name>``, across processes); the only
        host-device synchronisation of the extras.

        The running sums are not checkpointed: after a resume in the middle of an epoch, that epoch's means
        cover only the steps after the resume."""
        for k, (total, n) in self._epoch_logs.items():
            self.log(f"train/{k}", float(total) / n, on_step=False, on_epoch=True, sync_dist=True)
        self._epoch_logs = {}

    def trainable_modules(self) -> list[nn.Module]:
        """Modules whose parameters the optimiser updates (default: every child but frozen targets)."""
        return [m for m in self.children() if any(p.requires_grad for p in m.parameters())]

    def configure_gradient_clipping(self, optimizer: Any, gradient_clip_val: float | None = None,
                                    gradient_clip_algorithm: str | None = None) -> None:
        """Lightning's clipping, also for the fused AdamW under ``bf16-mixed``: the mixed-precision plugin
        refuses to clip any optimizer that unscales in its own step, although bf16 has no scaler; without
        one the gradients are the true ones and the base plugin's clipping (by norm or value) is exact."""
        from lightning.pytorch.plugins.precision import MixedPrecision, Precision
        from lightning.pytorch.utilities import GradClipAlgorithmType

        plugin = self.trainer.precision_plugin
        # only Lightning's own mixed precision without a scaler is bypassed: other plugins (DeepSpeed clips
        # inside its engine) keep their own clipping
        if not (isinstance(plugin, MixedPrecision) and plugin.scaler is None) or not gradient_clip_val:
            self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)
            return
        Precision.clip_gradients(plugin, optimizer, float(gradient_clip_val),
                                 GradClipAlgorithmType(gradient_clip_algorithm or "norm"))

    def configure_optimizers(self) -> Any:
        from lightly.models.utils import get_weight_decay_parameters

        decay, no_decay = get_weight_decay_parameters(self.trainable_modules())
        seen: set[int] = set()  # modules may share parameters (MAE's masked ViT wraps the encoder)

        def unique(params: list[nn.Parameter]) -> list[nn.Parameter]:
            out = []
            for p in params:
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
            return out

        decay, no_decay = unique(decay), unique(no_decay)
        # fused AdamW also when clipping: configure_gradient_clipping clips it where no scaler is involved
        scaled = grad_scaler(self._trainer) is not None
        opt = adamw([{"params": decay, "weight_decay": self.weight_decay},
                     {"params": no_decay, "weight_decay": 0.0}], lr=self.lr,
                    trainer=self._trainer if scaled else None)
        warmup = max(1, int(self.warmup_frac * self.max_steps))
        total = max(self.max_steps, warmup + 1)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / (total - warmup))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def progress_fraction(self) -> float:
        """Share of the training done, in ``[0, 1]`` (for momentum and temperature schedules)."""
        return min(1.0, self.global_step / max(1, self.max_steps))


class TrainStep(nn.Module):
    """An SSL method's training step as a module: raw batch -> :meth:`SSLMethod.train_views` ->
    :meth:`SSLMethod.loss` (what ``--precision auto`` times, :mod:`eoreps.precision_probe`)."""

    def __init__(self, method: SSLMethod) -> None:
        super().__init__()
        self.method = method

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.method.loss(self.method.train_views(batch))[0]


class EMAMixin:
    """EMA ("momentum") targets: ``target = m * target + (1 - m) * online``, ``m`` on a cosine schedule
    from ``momentum`` to 1 (BYOL, MoCo v2, DINO)."""

    momentum: float
    ema_pairs: list[tuple[nn.Module, nn.Module]]

    def ema_momentum(self) -> float:
        from lightly.utils.scheduler import cosine_schedule

        m: SSLMethod = self  # type: ignore[assignment]
        return float(cosine_schedule(m.global_step, max(1, m.max_steps), self.momentum, 1.0))

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        from lightly.models.utils import update_momentum

        m = self.ema_momentum()
        for online, target in self.ema_pairs:
            update_momentum(online, target, m)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` without gradients (an EMA target)."""
    import copy

    from lightly.models.utils import deactivate_requires_grad

    target = copy.deepcopy(module)
    deactivate_requires_grad(target)
    return target


def eo_augment(size: tuple[int, int], scale: tuple[float, float] = (0.35, 1.0), gain_std: float = 0.1,
               offset_std: float = 0.1) -> Any:
    """The EO-safe augmentation of one view: random resized crop, D4 flips/rotations, band gain/offset.

    No colour jitter or greyscale (meaningless for 12 spectral bands); gains and offsets are drawn per
    band and modality in normalised units.
    """
    from eoreps.transforms import BandGainOffset, Compose, RandomFlipRotate, RandomResizedCrop

    return Compose([RandomResizedCrop(size, scale=scale), RandomFlipRotate(),
                    BandGainOffset(gain_std=gain_std, offset_std=offset_std)])
