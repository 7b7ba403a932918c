"""MAE (He et al. 2022): mask 75 % of a ViT's patches, reconstruct them from the rest.

The encoder is a timm ViT (default ``--backbone timm:vit_tiny_patch16_224`` with ``img_size`` = the images'
size, ``patch_size=4``), run on the kept patches only through lightly's ``MaskedVisionTransformerTIMM``
(fixed 2-D sine-cosine position embeddings, as in the paper). A light decoder (lightly's
``MaskedVisionTransformerDecoderTIMM``) fills the masked positions with a learned mask token and predicts
their pixels; the loss (:func:`eoreps.ssl.losses.mae_loss`) is the mean squared error on the masked patches
against per-patch normalised targets. Views: random resized crop + D4.
bf16 autocast (``--precision bf16-mixed``) is the lever for ViTs on CPUs with AMX.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from eoreps.errors import ConfigError
from eoreps.ssl.losses import mae_loss
from eoreps.ssl.methods.base import Batch, SSLMethod
from eoreps.ssl.methods.registry import register_method


#: default backbone: a ViT (sized for the data by :func:`eoreps.ssl.pretrain.run_pretrain`: ``img_size`` = the
#: images', ``patch_size=4``), since masking patches needs one
@register_method("mae", default_backbone="timm:vit_tiny_patch16_224")
class MAE(SSLMethod):
    """Masked autoencoder.

    Args:
        mask_ratio: share of patches masked.
        decoder_dim, decoder_depth, decoder_heads: decoder size.
        norm_pix: per-patch normalised targets.
        **kwargs: see :class:`~eoreps.ssl.methods.base.SSLMethod`; the backbone must be a timm ViT.
    """

    def __init__(self, mask_ratio: float = 0.75, decoder_dim: int = 128, decoder_depth: int = 2,
                 decoder_heads: int = 4, norm_pix: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from lightly.models.modules import MaskedVisionTransformerDecoderTIMM, MaskedVisionTransformerTIMM

        vit = getattr(self.encoder, "model", None)
        if vit is None or not hasattr(vit, "patch_embed") or not hasattr(vit, "pos_embed"):
            raise ConfigError(
                f"MAE needs a timm ViT backbone, got '{self.backbone_name}'; use e.g. "
                "backbone=timm:vit_tiny_patch16_224 with backbone_kwargs=img_size=32,patch_size=4"
            )
        if not 0 < mask_ratio < 1:
            raise ConfigError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        self.mask_ratio, self.norm_pix = mask_ratio, norm_pix
        self.patch_size = int(vit.patch_embed.patch_size[0])
        self.num_prefix = int(vit.num_prefix_tokens)
        self.masked_vit = MaskedVisionTransformerTIMM(vit=vit)
        num_patches = int(vit.patch_embed.num_patches)
        self.decoder_embed = nn.Linear(int(vit.embed_dim), decoder_dim)
        self.decoder = MaskedVisionTransformerDecoderTIMM(num_patches=num_patches, embed_dim=decoder_dim,
                                                          depth=decoder_depth, num_heads=decoder_heads,
                                                          num_prefix_tokens=self.num_prefix)
        channels = sum(self.in_chans[m] for m in self.modalities)
        self.predict = nn.Linear(decoder_dim, self.patch_size**2 * channels)
        from eoreps.transforms import Compose, RandomFlipRotate, RandomResizedCrop

        self.augment = Compose([RandomResizedCrop(self.image_size, scale=(0.5, 1.0)), RandomFlipRotate()])

    def make_views(self, batch: Batch) -> torch.Tensor:
        """One augmented view ``(B, C, H, W)``."""
        return self.stack(self.augment({m: batch[m] for m in self.modalities}))

    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted and true pixels of the masked patches, both ``(B, M, p * p * C)``."""
        from lightly.models import utils

        b = x.shape[0]
        seq = self.masked_vit.sequence_length
        idx_keep, idx_mask = utils.random_token_mask((b, seq), mask_ratio=self.mask_ratio,
                                                     mask_class_token=self.num_prefix == 0, device=x.device)
        encoded = self.masked_vit.encode(images=x, idx_keep=idx_keep)  # (B, kept, D)
        tokens = utils.repeat_token(self.decoder.mask_token, (b, seq))
        tokens = utils.set_at_index(tokens, idx_keep, self.decoder_embed(encoded).type_as(tokens))
        decoded = self.decoder(tokens)  # adds position embeddings, transformer blocks, norm
        pred = self.predict(utils.get_at_index(decoded, idx_mask))
        target = utils.get_at_index(utils.patchify(x, self.patch_size), idx_mask - self.num_prefix)
        return pred, target

    def loss(self, views: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        pred, target = self.reconstruct(views)
        return mae_loss(pred, target, norm_pix=self.norm_pix), {}
