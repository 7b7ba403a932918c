"""Small ResNet-like CNNs that train quickly on a few CPU cores at 32 x 32 input.

``cnn-small`` (~0.3 M parameters): a stride-2 3x3 stem and three stages of basic residual blocks
(widths 32 / 64 / 128, strides 1 / 2 / 2), giving maps at reductions 2 / 4 / 8 and a 128-d pooled
vector. About 13 M multiply-adds per 32 x 32 image, a third of a ResNet-18 at that size.

Why not timm's ResNet: its 7x7 stride-2 stem plus max-pool reduces a 32 x 32 patch to 8 x 8 before the
first block and its narrowest configuration has 11 M parameters; these variants keep more resolution
for segmentation at small patch sizes and are sized for CPU experiments. Any timm model is available
as well through ``create_backbone("timm:<name>")``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from eoreps.errors import ConfigError
from eoreps.models.base import Backbone


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 projection) shortcut, as in ResNet-18."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        # The shortcut is registered first so that conv2 is the block's last module (GradNorm's "last
        # shared layer" is found in registration order; see eoreps.tasks.multitask.last_shared_weight).
        self.shortcut: nn.Module
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )
        else:
            self.shortcut = nn.Identity()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, c_in, H, W)`` -> ``(B, c_out, H / stride, W / stride)``."""
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class SmallResNet(Backbone):
    """A ResNet-like CNN: stem, then one stage per entry of ``widths``.

    Args:
        in_chans: input channels (any band count).
        widths: channels per stage.
        depths: residual blocks per stage (same length as ``widths``).
        stem_stride: stride of the 3x3 stem (2 halves the resolution before the first stage).
        drop_rate: dropout on the pooled vector (active in training and under MC dropout).
    """

    def __init__(
        self,
        in_chans: int,
        widths: Sequence[int] = (32, 64, 128),
        depths: Sequence[int] = (1, 1, 1),
        stem_stride: int = 2,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if not isinstance(in_chans, int) or in_chans < 1:
            raise ConfigError(f"in_chans={in_chans!r}: a backbone needs at least one input channel")
        if len(widths) != len(depths) or not widths:
            raise ConfigError(
                f"widths {tuple(widths)} and depths {tuple(depths)} must be non-empty and of equal length"
            )
        self.in_chans = in_chans
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, widths[0], 3, stride=stem_stride, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        stages = []
        c_prev, reduction = widths[0], stem_stride
        self.feature_info = []
        for i, (w, d) in enumerate(zip(widths, depths, strict=True)):
            stride = 1 if i == 0 else 2
            reduction *= stride
            blocks = [BasicBlock(c_prev, w, stride)] + [BasicBlock(w, w) for _ in range(d - 1)]
            stages.append(nn.Sequential(*blocks))
            self.feature_info.append({"num_chs": int(w), "reduction": int(reduction)})
            c_prev = w
        self.stages = nn.ModuleList(stages)
        self.num_features = int(widths[-1])
        self.drop = nn.Dropout(drop_rate)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # Zero-init the last BN of each residual branch: each block starts as the identity
        # (Goyal et al. 2017).
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(B, in_chans, H, W)`` -> pooled ``(B, num_features)``, maps ``[(B, C_i, H/r_i, W/r_i)]``."""
        h = self.stem(x)
        maps = []
        for stage in self.stages:
            h = stage(h)
            maps.append(h)
        pooled = self.drop(h.mean(dim=(2, 3)))
        return pooled, maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_chans, H, W)`` -> ``(B, num_features)``."""
        return self.forward_all(x)[0]


CNN_VARIANTS: dict[str, dict] = {
    "cnn-tiny": {"widths": (8, 16, 32), "depths": (1, 1, 1)},  # ~20 k parameters, for tests
    "cnn-small": {"widths": (32, 64, 128), "depths": (1, 1, 1)},  # ~0.3 M
    "cnn-base": {"widths": (64, 128, 256), "depths": (2, 2, 2)},  # ~2.8 M
}


def create_cnn(variant: str, in_chans: int, **kwargs) -> SmallResNet:
    """Build one of :data:`CNN_VARIANTS`; ``kwargs`` override its widths/depths/stem_stride/drop_rate."""
    cfg = {**CNN_VARIANTS[variant], **kwargs}
    return SmallResNet(in_chans, **cfg)
