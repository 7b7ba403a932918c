"""Any timm model as an eoreps :class:`~eoreps.models.base.Backbone` (``create_backbone("timm:<name>")``).

The model is built with ``timm.create_model(name, pretrained=False, in_chans=..., num_classes=0)``, so
any band count works (timm sizes the first layer for ``in_chans``). Pooled features come from timm's
own ``forward_head(..., pre_logits=True)``; feature maps from ``forward_intermediates`` (timm >= 1.0),
which returns transformer tokens already reshaped to a ``(B, C, H / p, W / p)`` grid. For transformers
only a few evenly spaced blocks are returned as maps (all would be redundant for a decoder).

Weights never come from a hub. ``checkpoint=PATH`` loads a local timm/torch checkpoint through timm's
pretrained-weight path (``pretrained_cfg_overlay={"file": PATH}``), which adapts the first convolution to
``in_chans`` and drops the classifier, as timm does for its own weights.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import torch

from eoreps.errors import ConfigError, DataError
from eoreps.models.base import Backbone

_VIT_MAX_MAPS = 4


class TimmBackbone(Backbone):
    """A timm model wrapped to the eoreps backbone contract.

    Args:
        model_name: timm model name (``timm.list_models()``), e.g. ``"resnet18"``.
        in_chans: input channels.
        checkpoint: optional local weights file (``.pth``, ``.bin`` or ``.safetensors``).
        **kwargs: passed to ``timm.create_model`` (``img_size``, ``patch_size``, ``drop_rate`` ...).
    """

    def __init__(
        self, model_name: str, in_chans: int, checkpoint: str | Path | None = None, **kwargs: Any
    ) -> None:
        super().__init__()
        import timm

        if not isinstance(in_chans, int) or in_chans < 1:
            raise ConfigError(f"in_chans={in_chans!r}: a backbone needs at least one input channel")
        if not timm.is_model(model_name):
            close = difflib.get_close_matches(model_name, timm.list_models(), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(
                f"unknown timm model '{model_name}'{hint}; see timm.list_models() for valid names"
            )
        create: dict[str, Any] = {"pretrained": False, "in_chans": in_chans, "num_classes": 0, **kwargs}
        if checkpoint is not None:
            path = Path(checkpoint)
            if not path.is_file():
                raise DataError(f"{path}: checkpoint file not found; pass an existing local weights file")
            create.update(pretrained=True, pretrained_cfg_overlay={"file": str(path)})
        try:
            self.model = timm.create_model(model_name, **create)
        except TypeError as e:
            raise ConfigError(
                f"timm model '{model_name}': invalid option ({e}); check the keyword arguments"
            ) from None
        except RuntimeError as e:  # shape mismatch while loading a checkpoint
            msg = str(e).splitlines()[0]
            raise DataError(
                f"{checkpoint}: cannot load into timm '{model_name}' ({msg}); use matching weights"
            ) from None
        self._adopt(in_chans)

    @classmethod
    def wrap(cls, model: torch.nn.Module, in_chans: int) -> TimmBackbone:
        """Wrap a timm model built elsewhere (e.g. by torchgeo's builders, which call timm) without
        rebuilding it; the caller sets ``spec`` so that :func:`~eoreps.models.io.load_backbone` can."""
        self = cls.__new__(cls)
        Backbone.__init__(self)
        self.model = model
        self._adopt(in_chans)
        return self

    def _adopt(self, in_chans: int) -> None:
        """Feature sizes and the maps to return, from ``self.model``."""
        self.in_chans = in_chans
        self.num_features = int(self.model.num_features)
        info = list(getattr(self.model, "feature_info", None) or [])
        self._has_maps = hasattr(self.model, "forward_intermediates") and bool(info)
        indices = list(range(len(info)))
        if (
            info
            and all(int(f["reduction"]) == int(info[0]["reduction"]) for f in info)
            and len(info) > _VIT_MAX_MAPS
        ):
            # Transformers: every block has the same stride; keep evenly spaced blocks ending at the last.
            step = len(info) / _VIT_MAX_MAPS
            indices = sorted({int(round((k + 1) * step)) - 1 for k in range(_VIT_MAX_MAPS)})
        self._indices = indices
        self.feature_info = [
            {"num_chs": int(info[i]["num_chs"]), "reduction": int(info[i]["reduction"])} for i in indices
        ]

    def _require_maps(self) -> None:
        if not self._has_maps:
            raise ConfigError(
                f"timm model '{self.spec.get('name', type(self.model).__name__)}' does not expose feature "
                "maps (no forward_intermediates); use a ResNet/ConvNeXt/ViT-style model for segmentation"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_chans, H, W)`` -> ``(B, num_features)`` (timm's pooled pre-logits)."""
        return self.model(x)

    def forward_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(B, in_chans, H, W)`` -> ``[(B, C_i, H / r_i, W / r_i)]``, one per ``feature_info`` entry."""
        self._require_maps()
        return list(self.model.forward_intermediates(x, indices=self._indices, intermediates_only=True))

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Pooled features and maps from one pass."""
        self._require_maps()
        final, maps = self.model.forward_intermediates(x, indices=self._indices, intermediates_only=False)
        return self.model.forward_head(final, pre_logits=True), list(maps)
