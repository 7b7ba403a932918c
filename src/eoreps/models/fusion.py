"""Early and late fusion of any subset of modalities, chosen by name.

Both encoders take a batch dict of *normalised* modality tensors (image ``(B, C, H, W)``, vector
``(B, C)``) and return ``(pooled (B, num_features), maps [(B, C_i, H/r_i, W/r_i)])`` like a backbone,
with ``num_features`` and ``feature_info`` describing them, so every head works on either.

* :class:`EarlyFusion`: modalities are stacked on one common grid (``grid_size``): images are resized
  (bilinear; categorical ones one-hot encoded and resized nearest), vector modalities such as season or
  weather are broadcast to constant planes; one backbone sees all channels.
* :class:`LateFusion`: one backbone per image modality and a small MLP per vector modality (a CNN on
  constant planes would only learn a per-sample constant); pooled features are concatenated. Maps are
  concatenated per stage; vector features are broadcast onto the deepest map. ``share_weights=True``
  uses one backbone for all image modalities behind a per-modality 1x1 convolution that maps each to a
  common channel count. With a single image modality and no sharing it is exactly that backbone.

NaNs (no data) remaining after normalisation are set to 0, the normalised mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from eoreps.errors import ConfigError, DataError
from eoreps.models.registry import create_backbone


@dataclass(frozen=True)
class InputSpec:
    """One input modality as the model sees it.

    Attributes:
        name: modality key in the batch (``"s2"``, ``"season"`` ...).
        channels: channels fed to the model (``num_classes`` for categorical inputs, one-hot).
        kind: ``"image"`` (``(C, H, W)`` samples) or ``"vector"`` (``(C,)`` samples).
        num_classes: classes of a categorical modality (e.g. land cover), else ``None``.
    """

    name: str
    channels: int
    kind: str = "image"
    num_classes: int | None = None


def input_specs(sample: dict[str, Any], modalities: Sequence[str]) -> list[InputSpec]:
    """Describe ``modalities`` from one sample (its tensors' shapes) and :mod:`eoreps.data.modalities`."""
    from eoreps.data.modalities import MODALITIES

    specs = []
    for name in modalities:
        if name not in sample:
            present = [k for k, v in sample.items() if isinstance(v, torch.Tensor) and v.dim() in (1, 3)]
            raise ConfigError(f"modality '{name}' is not in this dataset; choose from: {', '.join(present)}")
        t = torch.as_tensor(sample[name])
        mod = MODALITIES.get(name)
        if mod is not None and mod.categorical:
            specs.append(InputSpec(name, int(mod.num_classes or 1), "image", int(mod.num_classes or 1)))
        elif t.dim() == 3:
            specs.append(InputSpec(name, int(t.shape[0]), "image"))
        elif t.dim() == 1:
            specs.append(InputSpec(name, int(t.shape[0]), "vector"))
        else:
            raise DataError(f"modality '{name}' has shape {tuple(t.shape)}; expected (C, H, W) or (C,)")
    return specs


def _encode(batch: dict[str, torch.Tensor], spec: InputSpec) -> torch.Tensor:
    """The float tensor for ``spec``: one-hot for categorical, NaN -> 0."""
    x = batch[spec.name]
    if (
        spec.num_classes is not None
        and x.is_floating_point()
        and x.dim() == 4
        and x.shape[1] == spec.num_classes
    ):
        return torch.nan_to_num(x, nan=0.0)  # already one-hot (eoreps.data.stats.Normalizer does this)
    if spec.num_classes is not None:
        idx = x.long()
        if idx.dim() == 4:
            idx = idx[:, 0]
        valid = (idx >= 0) & (idx < spec.num_classes)
        onehot = F.one_hot(idx.clamp(0, spec.num_classes - 1), spec.num_classes).permute(0, 3, 1, 2)
        return (onehot * valid[:, None]).float()
    return torch.nan_to_num(x.float(), nan=0.0)


class EarlyFusion(nn.Module):
    """Stack all modalities on a ``grid_size`` grid and feed one backbone.

    Args:
        specs: the inputs (see :func:`input_specs`).
        backbone: registry name (``"cnn-small"``, ``"timm:resnet18"`` ...).
        grid_size: ``(H, W)`` of the common grid (usually the main image's or the mask's size).
        **backbone_kwargs: passed to :func:`~eoreps.models.registry.create_backbone`.
    """

    def __init__(
        self, specs: Sequence[InputSpec], backbone: str, grid_size: tuple[int, int], **backbone_kwargs: Any
    ):
        super().__init__()
        if not specs:
            raise ConfigError("fusion needs at least one modality")
        self.specs = list(specs)
        self.grid_size = tuple(grid_size)
        self.backbone = create_backbone(
            backbone, in_chans=sum(s.channels for s in self.specs), **backbone_kwargs
        )
        self.num_features = self.backbone.num_features
        self.feature_info = self.backbone.feature_info

    def stack(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Batch dict -> ``(B, sum C, *grid_size)``."""
        planes = []
        for spec in self.specs:
            x = _encode(batch, spec)
            if spec.kind == "vector":
                x = x[:, :, None, None].expand(-1, -1, *self.grid_size)
            elif tuple(x.shape[-2:]) != self.grid_size:
                mode = "nearest" if spec.num_classes is not None else "bilinear"
                x = F.interpolate(
                    x,
                    size=self.grid_size,
                    mode=mode,
                    **({} if mode == "nearest" else {"align_corners": False}),
                )
            planes.append(x)
        return torch.cat(planes, dim=1)

    def forward_all(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Pooled ``(B, num_features)`` and maps of the stacked input."""
        return self.backbone.forward_all(self.stack(batch))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Pooled features ``(B, num_features)``."""
        return self.backbone(self.stack(batch))


class VectorEncoder(nn.Module):
    """Linear -> ReLU -> Linear -> ReLU for a vector modality ``(B, C)`` -> ``(B, width)``."""

    def __init__(self, in_features: int, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())
        self.num_features = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` -> ``(B, width)``."""
        return self.net(x)


class LateFusion(nn.Module):
    """One encoder per modality, features concatenated (see the module docstring).

    Args:
        specs: the inputs.
        backbone: registry name used for every image modality.
        grid_size: ``(H, W)``; image modalities of other sizes are resized to it.
        share_weights: one backbone for all image modalities (behind per-modality 1x1 adapters).
        vector_width: feature size of each vector-modality MLP.
        **backbone_kwargs: passed to :func:`~eoreps.models.registry.create_backbone`.
    """

    def __init__(self, specs: Sequence[InputSpec], backbone: str, grid_size: tuple[int, int],
                 share_weights: bool = False, vector_width: int = 32, **backbone_kwargs: Any):
        super().__init__()
        if not specs:
            raise ConfigError("fusion needs at least one modality")
        self.specs = list(specs)
        self.grid_size = tuple(grid_size)
        self.share_weights = share_weights
        images = [s for s in self.specs if s.kind == "image"]
        vectors = [s for s in self.specs if s.kind == "vector"]
        self.encoders = nn.ModuleDict()
        self.adapters = nn.ModuleDict()
        if share_weights and images:
            common = max(s.channels for s in images)
            shared = create_backbone(backbone, in_chans=common, **backbone_kwargs)
            for s in images:
                self.adapters[s.name] = nn.Conv2d(s.channels, common, 1)
                self.encoders[s.name] = shared  # the same module object: weights are shared
        else:
            for s in images:
                self.encoders[s.name] = create_backbone(backbone, in_chans=s.channels, **backbone_kwargs)
        for s in vectors:
            self.encoders[s.name] = VectorEncoder(s.channels, vector_width)
        self.num_features = sum(self.encoders[s.name].num_features for s in self.specs)
        vec_feats = sum(self.encoders[s.name].num_features for s in vectors)
        if images:
            base = self.encoders[images[0].name].feature_info
            self.feature_info = [
                {"num_chs": f["num_chs"] * len(images) + (vec_feats if i == len(base) - 1 else 0),
                 "reduction": f["reduction"]}
                for i, f in enumerate(base)
            ]
        else:
            self.feature_info = [{"num_chs": vec_feats, "reduction": max(self.grid_size)}]

    def forward_all(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Concatenated pooled features ``(B, num_features)`` and per-stage concatenated maps."""
        pooled, stage_maps, vec = [], [], []
        for s in self.specs:
            x = _encode(batch, s)
            if s.kind == "vector":
                z = self.encoders[s.name](x)
                vec.append(z)
                pooled.append(z)
                continue
            if tuple(x.shape[-2:]) != self.grid_size:
                mode = "nearest" if s.num_classes is not None else "bilinear"
                x = F.interpolate(
                    x,
                    size=self.grid_size,
                    mode=mode,
                    **({} if mode == "nearest" else {"align_corners": False}),
                )
            if s.name in self.adapters:
                x = self.adapters[s.name](x)
            z, maps = self.encoders[s.name].forward_all(x)
            pooled.append(z)
            stage_maps.append(maps)
        if stage_maps:
            maps = [
                torch.cat(level, dim=1) if len(level) > 1 else level[0]
                for level in zip(*stage_maps, strict=True)
            ]
            if vec:
                v = torch.cat(vec, dim=1)
                maps[-1] = torch.cat(
                    [maps[-1], v[:, :, None, None].expand(-1, -1, *maps[-1].shape[-2:])], dim=1
                )
        else:
            maps = [torch.cat(vec, dim=1)[:, :, None, None]]
        return (torch.cat(pooled, dim=1) if len(pooled) > 1 else pooled[0]), maps

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Pooled features ``(B, num_features)``."""
        return self.forward_all(batch)[0]


FUSIONS = ("early", "late")


def build_encoder(fusion: str, specs: Sequence[InputSpec], backbone: str, grid_size: tuple[int, int],
                  share_weights: bool = False, **backbone_kwargs: Any) -> EarlyFusion | LateFusion:
    """``"early"`` -> :class:`EarlyFusion`, ``"late"`` -> :class:`LateFusion`."""
    if fusion == "early":
        if share_weights:
            raise ConfigError("share_weights applies to late fusion only; drop it or use fusion=late")
        return EarlyFusion(specs, backbone, grid_size, **backbone_kwargs)
    if fusion == "late":
        return LateFusion(specs, backbone, grid_size, share_weights=share_weights, **backbone_kwargs)
    from eoreps.errors import unknown_name

    raise unknown_name("fusion", fusion, FUSIONS)
