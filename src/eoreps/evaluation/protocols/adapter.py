"""Adapter fine-tuning: the encoder stays frozen; a small adapter and the head train.

Two adapters, as compared side by side in SpectralEarth's protocols (frozen / full / adapter-only):

* :class:`SpectralAdapter`: a 1-D CNN along the band axis of every pixel, in front of the backbone. It
  maps ``C_in`` input bands to the backbone's ``C_out`` input channels, so a backbone pretrained on one
  band set can read another (e.g. hyperspectral input with hundreds of bands). When ``C_in == C_out``
  it is residual and starts as the identity (last layer zero-initialised).
* :class:`LoRAConv2d` / :class:`LoRALinear`: low-rank adapters (Hu et al. 2022) added to every
  convolution / linear layer of the frozen encoder: ``y = W x + (alpha / r) B A x`` with ``A`` a
  ``k x k`` convolution to ``r`` channels and ``B`` a 1x1 convolution back, ``B`` zero-initialised.

The result reports ``trainable_params`` (adapter + head) and ``adapter_params`` (adapter alone).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from eoreps.errors import ConfigError
from eoreps.evaluation.encoders import BackboneEncoder, BuiltEncoder
from eoreps.evaluation.protocols.base import AdapterOptions, Cell, TrainOptions
from eoreps.evaluation.protocols.finetune import train_and_test
from eoreps.evaluation.protocols.registry import TASKS, register_protocol

ADAPTERS = ("auto", "spectral", "lora")


class SpectralAdapter(nn.Module):
    """``(B, C_in, H, W)`` -> ``(B, C_out, H, W)`` by a per-pixel 1-D CNN over the bands.

    Conv1d(1 -> h, k) -> GELU -> Conv1d(h -> h, k) -> GELU -> adaptive average pooling of the band axis to
    ``C_out`` positions -> Conv1d(h -> 1, 1). About ``h * (k + h * k + 1) + ...`` parameters, independent
    of the band count (``h = 16, k = 5``: ~1.4 k).
    """

    def __init__(self, c_in: int, c_out: int, hidden: int = 16, kernel: int = 5) -> None:
        super().__init__()
        self.c_in, self.c_out = c_in, c_out
        self.conv1 = nn.Conv1d(1, hidden, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv1d(hidden, hidden, kernel, padding=kernel // 2)
        self.pool = nn.AdaptiveAvgPool1d(c_out)
        self.out = nn.Conv1d(hidden, 1, 1)
        self.residual = c_in == c_out
        if self.residual:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W)`` -> ``(B, C_out, H, W)``."""
        b, c, h, w = x.shape
        if c != self.c_in:
            raise ConfigError(f"spectral adapter built for {self.c_in} bands got {c}")
        z = x.permute(0, 2, 3, 1).reshape(b * h * w, 1, c)
        z = F.gelu(self.conv1(z))
        z = F.gelu(self.conv2(z))
        z = self.out(self.pool(z)).reshape(b, h, w, self.c_out).permute(0, 3, 1, 2)
        return x + z if self.residual else z.contiguous()


class LoRAConv2d(nn.Module):
    """A frozen ``nn.Conv2d`` plus a trainable rank-``r`` update (see the module docstring)."""

    def __init__(self, base: nn.Conv2d, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.down = nn.Conv2d(
            base.in_channels, rank, base.kernel_size, base.stride, base.padding, base.dilation, bias=False
        )
        self.up = nn.Conv2d(rank, base.out_channels, 1, bias=False)
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.up.weight)
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same shapes as the base convolution."""
        return self.base(x) + self.scale * self.up(self.down(x))


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable rank-``r`` update."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.down = nn.Linear(base.in_features, rank, bias=False)
        self.up = nn.Linear(rank, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.up.weight)
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same shapes as the base layer."""
        return self.base(x) + self.scale * self.up(self.down(x))


def add_lora(module: nn.Module, rank: int, alpha: float) -> list[nn.Module]:
    """Wrap every (ungrouped) ``Conv2d`` and ``Linear`` inside ``module`` with a low-rank adapter, in place.

    The base layers are frozen; returns the new adapter modules (their ``down`` / ``up`` train).
    """
    if rank < 1:
        raise ConfigError(f"LoRA rank must be >= 1, got {rank}")
    added: list[nn.Module] = []
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Conv2d) and child.groups == 1:
            child.requires_grad_(False)
            wrapped: nn.Module = LoRAConv2d(child, rank, alpha)
        elif isinstance(child, nn.Linear):
            child.requires_grad_(False)
            wrapped = LoRALinear(child, rank, alpha)
        else:
            added += add_lora(child, rank, alpha)
            continue
        setattr(module, name, wrapped)
        added.append(wrapped)
    return added


class InputAdapters(nn.Module):
    """Apply per-modality modules to a batch dict, then an encoder (keeps the encoder interface)."""

    def __init__(self, encoder: nn.Module, adapters: dict[str, nn.Module]) -> None:
        super().__init__()
        self.encoder = encoder
        self.adapters = nn.ModuleDict(adapters)
        self.num_features = encoder.num_features
        self.feature_info = encoder.feature_info
        self.grid_size = encoder.grid_size

    def _adapt(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {m: (self.adapters[m](x) if m in self.adapters else x) for m, x in batch.items()}

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Pooled features ``(B, D)``."""
        return self.encoder(self._adapt(batch))

    def forward_all(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Pooled features and maps."""
        return self.encoder.forward_all(self._adapt(batch))


def _group_channels(enc: BackboneEncoder, g: str, cell: Cell) -> int:
    """Channels that reach backbone ``g``: its modalities' stacked channels, or the output of the group's
    band mapping (a ``BandSelect`` that selects, reorders and fills bands for external weights)."""
    band_map = getattr(enc.adapters[g], "band_map", None) if g in enc.adapters else None
    if band_map is not None:
        return len(band_map.sources)
    return sum(cell.data.channels(m) for m in enc.groups[g])


def _choose(built: BuiltEncoder, cell: Cell) -> str:
    opts = cell.options.adapter
    if opts.kind not in ADAPTERS:
        from eoreps.errors import unknown_name

        raise unknown_name("adapter", opts.kind, ADAPTERS)
    enc = built.encoder
    mismatch = isinstance(enc, BackboneEncoder) and any(
        _group_channels(enc, g, cell) != enc.backbones[g].in_chans for g in enc.groups)
    if opts.kind == "lora" and mismatch:
        raise ConfigError("the backbone's input channels differ from the data's; use adapter kind 'spectral'")
    if opts.kind != "auto":
        return opts.kind
    many = max(cell.data.channels(m) for m in cell.data.modalities) >= opts.many_bands
    return "spectral" if (mismatch or many) else "lora"


def _prepare(built: BuiltEncoder, cell: Cell):
    opts = cell.options.adapter
    kind = _choose(built, cell)
    enc = built.encoder
    if kind == "lora":
        modules = add_lora(enc, opts.rank, opts.alpha)
    elif isinstance(enc, BackboneEncoder):
        modules = []
        for g in enc.groups:
            spectral = SpectralAdapter(
                _group_channels(enc, g, cell), enc.backbones[g].in_chans, opts.spectral_hidden,
                opts.spectral_kernel,
            )
            # after the group's band mapping, which keeps its fill and order (the adapter refines it)
            enc.adapters[g] = nn.Sequential(enc.adapters[g], spectral) if g in enc.adapters else spectral
            modules.append(spectral)
    else:  # fusion encoders: one residual adapter per image modality
        adapters = {
            m: SpectralAdapter(
                cell.data.channels(m), cell.data.channels(m), opts.spectral_hidden, opts.spectral_kernel
            )
            for m in cell.data.modalities
            if cell.data.splits["train"].inputs[m].dim() == 4
        }
        enc = InputAdapters(enc, adapters)
        modules = list(adapters.values())
    n_adapter = sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)
    return enc, modules, {"adapter_params": float(n_adapter), "adapter": kind}


@register_protocol("adapter", tasks=TASKS, options=(TrainOptions, AdapterOptions))
def run_adapter(cell: Cell) -> dict[str, float]:
    """Frozen encoder + trainable adapter (spectral or LoRA, see :class:`AdapterOptions`) + new head."""
    return train_and_test(cell, 0.0, freeze_encoder=True, allow_channel_mismatch=True, prepare=_prepare)
