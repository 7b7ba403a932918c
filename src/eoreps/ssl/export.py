"""Exported pretrained encoders: the layout, the cards, and loading them back (incl. late fusion).

Layout of an ``eoreps pretrain --out OUT`` run::

    OUT/backbone.safetensors + backbone.json        single-encoder methods (simclr, moco, byol, dino,
                                                    mae, tile2vec): one encoder reading the
                                                    modalities stacked along channels
    OUT/backbone_<modality>.safetensors + .json     multimodal: one encoder per modality
    OUT/encoders.json                               index: method, encoder key -> file, modalities
    OUT/pretrain.json                               run summary: config, metrics, monitor history, time
    OUT/checkpoints/last.ckpt                       Lightning checkpoint (``--resume`` continues it)

Each card (written by :func:`eoreps.models.io.save_backbone`, loaded with
:func:`eoreps.models.load_backbone`) holds ``method``, ``modalities`` (the encoder's inputs, in channel
order), ``band_names`` and ``normalization`` (``{m: {"mean": [...], "std": [...]}}``) per modality,
``input`` (how to build the input: normalise each modality ``(x - mean) / std``, replace non-finite
values by ``nan_fill``, concatenate channels in ``modalities`` order, ``image_size``), ``data``,
``epochs``, ``steps``, ``metrics`` and ``backbone`` (registry name, ``in_chans`` and options).
Multimodal cards add ``group``: the sibling encoders of the same run, for late fusion.

Downstream::

    from eoreps.ssl.export import LateFusionEncoder, load_encoders, merged_normalizer
    encoders = load_encoders("OUT")                 # {"s2": Backbone, "s1": Backbone}
    fused = LateFusionEncoder(encoders)             # batch dict of normalised modalities -> concat features
    feats = fused(merged_normalizer(encoders)(raw_batch))   # (B, D_s2 + D_s1)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from eoreps.data.stats import BandStats, Normalizer
from eoreps.errors import DataError
from eoreps.io import read_json, write_json
from eoreps.models import Backbone, load_backbone, save_backbone
from eoreps.models.card import BackboneCard

INDEX_FILE = "encoders.json"


def encoder_filename(key: str, single: bool) -> str:
    """``backbone.safetensors`` for a single encoder, ``backbone_<key>.safetensors`` otherwise."""
    return "backbone.safetensors" if single else f"backbone_{key.replace('+', '_')}.safetensors"


def export_encoders(module: Any, out: str | Path, card: Mapping[str, Any]) -> dict[str, Path]:
    """Save every encoder of a pretraining method with its card; write the ``encoders.json`` index.

    Args:
        module: an :class:`~eoreps.ssl.methods.base.SSLMethod` (its ``encoders``, ``encoder_inputs``,
            ``band_stats``, ``image_size``).
        out: run folder.
        card: common card entries (``method``, ``data``, ``epochs``, ``steps``, ``metrics``, ...).

    Returns:
        encoder key -> weights path.
    """
    out = Path(out)
    stats: BandStats = module.band_stats
    single = len(module.encoders) == 1
    files = {k: encoder_filename(k, single) for k in module.encoders}
    paths: dict[str, Path] = {}
    for key, enc in module.encoders.items():
        mods = module.encoder_inputs[key]
        metrics = {k.split("/", 1)[1] if k.startswith(f"{key}/") else k: v
                   for k, v in dict(card.get("metrics") or {}).items()
                   if not any(k.startswith(f"{o}/") for o in module.encoders if o != key)}
        enc_card = {
            **card,
            "modalities": list(mods),
            "band_names": {m: list(stats.bands.get(m, ())) for m in mods},
            "normalization": {m: {"mean": list(stats.mean[m]), "std": list(stats.std[m])} for m in mods},
            "input": {"stack": list(mods), "image_size": list(module.image_size), "nan_fill": 0.0,
                      "normalize": "(x - mean) / std per band, then non-finite -> nan_fill"},
            "metrics": metrics,
        }
        if not single:
            enc_card["group"] = {"encoder": key, "members": {k: {"file": files[k], "modalities": module.encoder_inputs[k]}
                                                              for k in module.encoders}}
        paths[key] = save_backbone(enc.float(), out / files[key], enc_card)
    write_json(out / INDEX_FILE, {"method": card.get("method"), "late_fusion": not single,
                                  "encoders": {k: {"file": files[k], "modalities": module.encoder_inputs[k]}
                                               for k in module.encoders}})
    return paths


def load_encoders(out: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Backbone]:
    """All encoders of a pretraining run folder (``{key: Backbone}``, each with ``.card``)."""
    out = Path(out)
    index_path = out / INDEX_FILE
    if not index_path.is_file():
        if (out / "backbone.safetensors").is_file():
            bb = load_backbone(out / "backbone.safetensors", map_location)
            return {"+".join(bb.card.modalities or ["x"]): bb}
        raise DataError(f"{out}: no {INDEX_FILE} or backbone.safetensors; pass the --out folder of `eoreps pretrain`")
    index = read_json(index_path)
    try:
        return {k: load_backbone(out / v["file"], map_location) for k, v in index["encoders"].items()}
    except (KeyError, TypeError):
        raise DataError(f"{index_path}: malformed encoder index; re-export the run") from None


def _card(card: BackboneCard | Mapping[str, Any]) -> BackboneCard:
    return card if isinstance(card, BackboneCard) else BackboneCard.from_dict(dict(card))


def _normalizer(norm: Mapping[str, Any], band_names: Mapping[str, Any], fill: float) -> Normalizer:
    if not norm:
        raise DataError("backbone card has no 'normalization'; it was not exported by eoreps pretrain")
    stats = BandStats(mean={m: tuple(v["mean"]) for m, v in norm.items()},
                      std={m: tuple(v["std"]) for m, v in norm.items()},
                      bands={m: tuple(band_names.get(m, ())) for m in norm})
    return Normalizer(stats, fill=fill)


def input_normalizer(card: BackboneCard | Mapping[str, Any]) -> Normalizer:
    """A :class:`Normalizer` with the statistics a backbone was pretrained with (from its card)."""
    c = _card(card)
    return _normalizer(c.normalization or {}, c.band_names or {}, c.nan_fill)


def merged_normalizer(encoders: Mapping[str, Backbone]) -> Normalizer:
    """One :class:`Normalizer` for the modalities of several encoders (late fusion of a multimodal run)."""
    norm: dict[str, Any] = {}
    bands: dict[str, Any] = {}
    for enc in encoders.values():
        norm.update(enc.card.normalization or {})
        bands.update(enc.card.band_names or {})
    return _normalizer(norm, bands, 0.0)


def stack_inputs(batch: Mapping[str, torch.Tensor], card: BackboneCard | Mapping[str, Any]) -> torch.Tensor:
    """The encoder input ``(B, sum C_m, H, W)`` from a normalised batch, in the card's channel order."""
    mods = _card(card).input_stack
    missing = [m for m in mods if m not in batch]
    if missing:
        raise DataError(f"batch has no {missing} (keys: {', '.join(batch)}); the backbone was pretrained on {mods}")
    xs = [batch[m] for m in mods]
    return xs[0] if len(xs) == 1 else torch.cat(xs, dim=1)


class LateFusionEncoder(nn.Module):
    """Several pretrained encoders side by side: ``forward(batch) -> (B, sum D_k)`` (concatenated features).

    ``batch`` maps modality -> normalised ``(B, C, H, W)``; each encoder reads the modalities of its card.
    """

    def __init__(self, encoders: Mapping[str, Backbone]) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict(dict(encoders))
        self.num_features = sum(int(e.num_features) for e in encoders.values())

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Normalised batch dict -> ``(B, num_features)``."""
        return torch.cat([enc(stack_inputs(batch, enc.card)) for enc in self.encoders.values()], dim=1)
