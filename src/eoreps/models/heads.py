"""Task heads over backbone features, and the heteroscedastic Gaussian loss.

=========================  ==========================  ====================================
head                       input                       output
=========================  ==========================  ====================================
:class:`MLPHead`           pooled ``(B, F)``           ``(B, K)`` logits or values
:class:`RegressionHead`    pooled ``(B, F)``           ``(B,)`` (or ``(B, D)``)
:class:`HeteroscedasticHead`  pooled ``(B, F)``        mean and log-variance, each ``(B,)``/``(B, D)``
:class:`UNetDecoder`       maps ``[(B, C_i, h_i, w_i)]``  ``(B, K, H, W)`` logits
:class:`AttentionPool`     deepest map ``(B, C, h, w)``  pooled ``(B, C)`` (replaces global average pooling)
=========================  ==========================  ====================================

Every head has dropout before each linear/1x1 layer (``dropout``), which MC dropout keeps active at
prediction time (:mod:`eoreps.tasks.uncertainty`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class MLPHead(nn.Module):
    """Dropout -> Linear (-> ReLU -> Dropout -> Linear when ``hidden``); used for class logits.

    Args:
        in_features: pooled feature size ``F``.
        out_features: outputs ``K`` (classes, labels or regression targets).
        hidden: optional hidden width.
        dropout: dropout probability before each linear layer.
    """

    def __init__(
        self, in_features: int, out_features: int, hidden: int | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden:
            layers += [nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            in_features = hidden
        layers.append(nn.Linear(in_features, out_features))
        self.net = nn.Sequential(*layers)
        self.out_features = out_features

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, F)`` -> ``(B, K)``."""
        return self.net(z)


class RegressionHead(MLPHead):
    """Scalar (``out_dim=1`` -> ``(B,)``) or vector (``(B, D)``) regression."""

    def __init__(
        self, in_features: int, out_dim: int = 1, hidden: int | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__(in_features, out_dim, hidden, dropout)
        self.out_dim = out_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, F)`` -> ``(B,)`` if ``out_dim == 1`` else ``(B, D)``."""
        y = self.net(z)
        return y.squeeze(-1) if self.out_dim == 1 else y


class HeteroscedasticHead(nn.Module):
    """Predicts the mean ``f`` and the log-variance ``s = -log g`` of a diagonal Gaussian.

    Returns ``(mean, log_var)``, each ``(B,)`` for ``out_dim == 1`` else ``(B, D)``. The log-variance is
    clamped to [-10, 10] for numerical safety (variances between 4.5e-5 and 2.2e4 in normalised units).
    """

    def __init__(
        self, in_features: int, out_dim: int = 1, hidden: int | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.body = MLPHead(in_features, 2 * out_dim, hidden, dropout)
        self.out_dim = out_dim

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, F)`` -> ``(mean, log_var)``."""
        out = self.body(z)
        mean, log_var = out[:, : self.out_dim], out[:, self.out_dim:].clamp(-10.0, 10.0)
        if self.out_dim == 1:
            return mean.squeeze(-1), log_var.squeeze(-1)
        return mean, log_var


def gaussian_nll(mean: torch.Tensor, log_var: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the heteroscedastic Gaussian negative log-likelihood.

    With precision ``g = diag(exp(-log_var))`` (Scheibenreif et al. 2022; Kendall & Gal 2017):
    ``L = 1/2 (y - f) g (y - f)^T - 1/2 log det g + D/2 log 2 pi``
    ``  = sum_d [1/2 (y_d - f_d)^2 exp(-s_d) + 1/2 s_d] + D/2 log 2 pi``.

    Args:
        mean, log_var, target: ``(B,)`` (D = 1) or ``(B, D)``.

    Hand-written instead of ``torch.nn.GaussianNLLLoss`` because that one drops the constant and clamps
    the variance with an ``eps`` inside, so it is not the published likelihood.
    """
    if mean.dim() == 1:
        mean, log_var, target = mean[:, None], log_var[:, None], target[:, None]
    d = mean.shape[-1]
    per_sample = 0.5 * ((target - mean) ** 2 * torch.exp(-log_var)).sum(-1) + 0.5 * log_var.sum(-1)
    return per_sample.mean() + 0.5 * d * math.log(2 * math.pi)


class AttentionPool(nn.Module):
    """Attention pooling of a feature map: a 1x1 convolution scores every location, a softmax over the
    locations turns the scores into weights, the output is the weighted sum of the feature vectors
    (the attention-based multiple-instance pooling of Ilse, Tomczak & Welling 2018, with one linear scorer).

    Global average pooling dilutes an object that covers a few percent of a patch (a power plant's site in
    the middle of 64 x 64 px of landscape); attention lets each head look where its evidence is. The scorer
    starts at zero, so an untrained attention pool *is* global average pooling.

    Hand-written: timm's ``AttentionPool2d`` is multi-head attention with a learned query and position
    embeddings tied to one input size; this is the two-line pooling the heads need, for any map size.

    Args:
        channels: ``C`` of the map.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.score = nn.Conv2d(channels, 1, kernel_size=1)
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, h, w)`` -> attention weights ``(B, h, w)`` (sum 1 per sample)."""
        b, _, h, w = x.shape
        return torch.softmax(self.score(x).float().flatten(1), dim=1).view(b, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, h, w)`` -> ``(B, C)``."""
        a = self.weights(x).to(x.dtype)
        return torch.einsum("bchw,bhw->bc", x, a)


class ConvBNReLU(nn.Sequential):
    """3x3 conv, batch norm, ReLU."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
        )


class UNetDecoder(nn.Module):
    """U-Net-style decoder over a backbone's feature maps (Ronneberger et al. 2015).

    Starting at the deepest map, it repeatedly upsamples (bilinear) to the next shallower map's size,
    concatenates that skip map and applies two 3x3 conv-BN-ReLU layers; the result is upsampled to the
    requested output size and classified by a 1x1 convolution. Works for any list of reductions,
    including the equal-stride maps of a ViT.

    Args:
        feature_channels: ``num_chs`` of each map, shallow to deep (``[f["num_chs"] for f in feature_info]``).
        num_classes: output classes ``K``.
        channels: decoder width (per stage, deepest first, or one int for all).
        dropout: ``Dropout2d`` before the classifier (MC dropout for segmentation).
    """

    def __init__(self, feature_channels: list[int], num_classes: int, channels: int | list[int] = 32,
                 dropout: float = 0.0) -> None:
        super().__init__()
        n = len(feature_channels)
        widths = [channels] * n if isinstance(channels, int) else list(channels)
        if len(widths) != n:
            raise ValueError(f"channels {channels} must have one entry per feature map ({n})")
        deep = feature_channels[::-1]
        self.bottleneck = nn.Conv2d(deep[0], widths[0], 1)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                ConvBNReLU(widths[i] + deep[i + 1], widths[i + 1]), ConvBNReLU(widths[i + 1], widths[i + 1])
            )
            for i in range(n - 1)
        )
        self.drop = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(widths[-1], num_classes, 1)
        self.num_classes = num_classes

    def forward(self, maps: list[torch.Tensor], out_size: tuple[int, int]) -> torch.Tensor:
        """``[(B, C_i, h_i, w_i)]`` (shallow to deep) -> ``(B, K, *out_size)`` logits."""
        deep = maps[::-1]
        h = self.bottleneck(deep[0])
        for block, skip in zip(self.blocks, deep[1:], strict=True):
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], dim=1))
        logits = self.classifier(self.drop(h))
        if tuple(logits.shape[-2:]) != tuple(out_size):
            logits = F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)
        return logits
