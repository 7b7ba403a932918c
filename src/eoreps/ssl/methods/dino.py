"""DINO (Caron et al. 2021): self-distillation with multi-crop, centring and sharpening.

The student (encoder + lightly's ``DINOProjectionHead``) sees two global and ``num_local`` local crops;
the EMA teacher sees the global crops only. lightly's ``DINOLoss`` is the cross-entropy between the
teacher's centred, sharpened softmax (temperature ``teacher_temp``, warmed up linearly from
``warmup_teacher_temp``) and the student's softmax (``student_temp``), over every pair of different
views; the centre is an EMA of the teacher outputs (averaged across processes). The head's last layer
is frozen during the first epoch, as in the paper.

Local crops are ``local_size`` px (default half the image): CNN backbones take any size; a timm ViT
needs ``dynamic_img_size=True`` among the backbone options.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from eoreps.ssl.methods.base import Batch, EMAMixin, SSLMethod, eo_augment, frozen_copy
from eoreps.ssl.methods.registry import register_method


@register_method("dino")
class DINO(EMAMixin, SSLMethod):
    """DINO.

    Args:
        out_dim: prototypes (output size of the head).
        hidden_dim, bottleneck_dim: head sizes.
        num_local: local crops per sample.
        local_size: side of the local crops (default: half the image side).
        global_scale, local_scale: area ranges of the global / local crops.
        teacher_temp, warmup_teacher_temp, warmup_frac_teacher: teacher temperature schedule.
        student_temp: student temperature.
        momentum: start of the teacher's EMA momentum (cosine to 1).
        **kwargs: see :class:`~eoreps.ssl.methods.base.SSLMethod`.
    """

    def __init__(
        self,
        out_dim: int = 2048,
        hidden_dim: int = 512,
        bottleneck_dim: int = 64,
        num_local: int = 4,
        local_size: int | None = None,
        global_scale: Sequence[float] = (0.4, 1.0),
        local_scale: Sequence[float] = (0.1, 0.4),
        teacher_temp: float = 0.04,
        warmup_teacher_temp: float = 0.04,
        warmup_frac_teacher: float = 0.3,
        student_temp: float = 0.1,
        momentum: float = 0.99,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        from lightly.loss import DINOLoss
        from lightly.models.modules import DINOProjectionHead

        d = self.encoder.num_features
        self.head = self.make_head(next(iter(self.encoders)), "dino", input_dim=d, hidden_dim=hidden_dim,
                                   bottleneck_dim=bottleneck_dim, output_dim=out_dim, freeze_last_layer=1)
        self.teacher_encoder = frozen_copy(self.encoder)
        # a fresh head loaded with the student's weights: the weight-normalised last layer
        # cannot be deep-copied
        self.teacher_head = DINOProjectionHead(d, hidden_dim, bottleneck_dim, out_dim)
        self.teacher_head.load_state_dict(self.head.state_dict())
        for p in self.teacher_head.parameters():
            p.requires_grad = False
        self.criterion = DINOLoss(output_dim=out_dim, teacher_temp=teacher_temp, student_temp=student_temp)
        self.teacher_temp, self.warmup_teacher_temp = teacher_temp, warmup_teacher_temp
        self.warmup_frac_teacher = warmup_frac_teacher
        self.momentum = momentum
        self.ema_pairs = [(self.encoder, self.teacher_encoder), (self.head, self.teacher_head)]
        h, w = self.image_size
        ls = local_size or max(8, h // 2)
        self.num_local = num_local
        self.global_aug = eo_augment(self.image_size, scale=tuple(global_scale))
        self.local_aug = eo_augment((ls, ls), scale=tuple(local_scale))

    def make_views(self, batch: Batch) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``(global crops, local crops)``: lists of ``(B, C, H, W)`` and ``(B, C, h, w)``."""
        mods = {m: batch[m] for m in self.modalities}
        glob = [self.stack(self.global_aug(mods)) for _ in range(2)]
        loc = [self.stack(self.local_aug(mods)) for _ in range(self.num_local)]
        return glob, loc

    def current_teacher_temp(self) -> float:
        """Linear warmup from ``warmup_teacher_temp`` to ``teacher_temp`` over the first steps."""
        frac = self.progress_fraction() / max(1e-8, self.warmup_frac_teacher)
        return self.warmup_teacher_temp + min(1.0, frac) * (self.teacher_temp - self.warmup_teacher_temp)

    def loss(
        self, views: tuple[list[torch.Tensor], list[torch.Tensor]]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        glob, loc = views
        b = glob[0].shape[0]
        with torch.no_grad():
            teacher = list(self.teacher_head(self.teacher_encoder(torch.cat(glob))).split(b))
        student = list(self.head(self.encoder(torch.cat(glob))).split(b))
        if loc:
            student += list(self.head(self.encoder(torch.cat(loc))).split(b))
        temp = self.current_teacher_temp()
        loss = self.criterion(teacher, student, teacher_temp=temp)
        return loss, {"teacher_temp": temp, "momentum": self.ema_momentum()}

    def on_after_backward(self) -> None:
        self.head.cancel_last_layer_gradients(self.current_epoch)
