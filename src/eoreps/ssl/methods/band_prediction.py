"""Band prediction: the multispectral analogue of colorization (Zhang, Isola & Efros 2016).

Colorization hides the colour channels of a photo and predicts them from the lightness channel. Here a
configurable set of spectral bands is held out (by default the red-edge bands B05-B07 and the SWIR
bands B11, B12 of Sentinel-2, named as in :mod:`eoreps.data.modalities`); the encoder sees the other
bands and a light U-Net-style decoder (:class:`eoreps.models.heads.UNetDecoder` over the backbone's
feature maps, as the segmentation head uses them) predicts the held-out bands at every pixel. Loss:
mean squared error in normalised units over the valid pixels (``valid_<modality>`` from the
normaliser; no-data pixels, whose values were replaced by 0, are ignored). Colorization's classification
over quantised colours is not used: reflectances are continuous and unimodal enough for a regression.

Input layout (a deliberate choice): the encoder keeps its full input stack (``in_chans`` = all
channels of all pretraining modalities) and the held-out channels are set to 0 (the band mean)
during pretraining. The first convolution's weights for those channels are zeroed at the start and,
since their input is always 0, receive no gradient and stay 0. The exported backbone therefore takes
all bands, like every other method's, and computes exactly the pretrained function (it ignores the
held-out bands) until fine-tuning gives those weights gradients. Views: a random D4 flip/rotation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from eoreps.errors import ConfigError
from eoreps.ssl.methods.base import Batch, SSLMethod
from eoreps.ssl.methods.registry import register_method

DEFAULT_HELD_OUT = ("B05", "B06", "B07", "B11", "B12")


def masked_mse(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``(pred - target)**2`` over the valid pixels and every channel.

    Args:
        pred, target: ``(B, K, H, W)``.
        valid: ``(B, H, W)`` bool, True where the target is real data.
    """
    w = valid[:, None].to(pred.dtype)
    return ((pred - target) ** 2 * w).sum() / (w.sum() * pred.shape[1]).clamp(min=1.0)


def first_conv(module: nn.Module, in_chans: int) -> nn.Conv2d | None:
    """The first ``Conv2d`` (in registration order) reading ``in_chans`` channels: the input layer."""
    return next((m for m in module.modules() if isinstance(m, nn.Conv2d) and m.in_channels == in_chans), None)


@register_method("band-prediction")
class BandPrediction(SSLMethod):
    """Predict held-out spectral bands from the others.

    Args:
        bands: names of the held-out bands of ``modality``.
        modality: the modality they belong to (must be a pretraining modality).
        decoder_channels: width of the decoder.
        **kwargs: see :class:`~eoreps.ssl.methods.base.SSLMethod`; the backbone must expose feature
            maps (``forward_maps``), as every eoreps CNN and timm ResNet / ConvNeXt / ViT does.
    """

    def __init__(
        self,
        bands: Sequence[str] = DEFAULT_HELD_OUT,
        modality: str = "s2",
        decoder_channels: int = 32,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if modality not in self.modalities:
            raise ConfigError(
                f"band-prediction holds out bands of '{modality}', which is not a pretraining modality "
                f"({', '.join(self.modalities)}); add it to modalities or set modality=..."
            )
        names = self._band_names(modality)
        if isinstance(bands, str):
            bands = [b.strip() for b in bands.split("+") if b.strip()]
        unknown = [b for b in bands if b not in names]
        if unknown or not bands or len(set(bands)) != len(bands):
            raise ConfigError(f"bands {list(bands)}: give distinct band names of '{modality}' "
                              f"({', '.join(names)}), e.g. bands=B11+B12")
        if len(bands) == len(names) and len(self.modalities) == 1:
            raise ConfigError(f"bands {list(bands)} hold out every band of '{modality}'; keep some as input")
        if decoder_channels < 1:
            raise ConfigError(f"decoder_channels must be >= 1, got {decoder_channels}")
        offset = 0
        for m in self.modalities:  # channel offset of `modality` in the stacked input
            if m == modality:
                break
            offset += self.in_chans[m]
        self.modality = modality
        self.held_out = [offset + names.index(b) for b in bands]
        if not self.encoder.feature_info:
            raise ConfigError(
                f"band-prediction decodes feature maps; backbone '{self.backbone_name}' has none"
            )
        from eoreps.models.heads import UNetDecoder

        self.decoder = UNetDecoder([f["num_chs"] for f in self.encoder.feature_info], len(bands),
                                   channels=decoder_channels)
        conv = first_conv(self.encoder, sum(self.in_chans.values()))
        if conv is not None:  # the held-out channels' input weights start at 0 and stay there (no gradient)
            with torch.no_grad():
                conv.weight[:, self.held_out] = 0.0
        from eoreps.transforms import RandomFlipRotate

        self.augment = RandomFlipRotate(rotate=self.image_size[0] == self.image_size[1])

    def _band_names(self, modality: str) -> list[str]:
        """Band names of ``modality``: the data's (from the statistics) or the modality definition's."""
        from eoreps.data.modalities import MODALITIES

        names = list(self.band_stats.bands.get(modality, ()))
        if not names and modality in MODALITIES:
            names = list(MODALITIES[modality].bands)
        if len(names) != self.in_chans[modality]:
            raise ConfigError(
                f"'{modality}' has {self.in_chans[modality]} channels but {len(names)} known band names "
                f"({', '.join(names) or 'none'}); use data whose bands are named"
            )
        return names

    def make_views(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encoder input ``(B, C, H, W)`` (held-out channels 0), targets ``(B, K, H, W)``,
        valid ``(B, H, W)``."""
        key = f"valid_{self.modality}"
        views = self.augment({**{m: batch[m] for m in self.modalities}, key: batch[key]})
        x = self.stack(views)
        target = x[:, self.held_out].clone()
        x = x.clone()
        x[:, self.held_out] = 0.0
        return x, target, views[key]

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder input ``(B, C, H, W)`` -> predicted held-out bands ``(B, K, H, W)``."""
        return self.decoder(self.encoder.forward_maps(x), out_size=tuple(x.shape[-2:]))

    def loss(
        self, views: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, target, valid = views
        loss = masked_mse(self.predict(x), target, valid)
        return loss, {"valid_fraction": valid.float().mean()}
