"""Exported pretrained encoders: the layout, the cards, and loading them back (incl. late fusion).

Layout of an ``eoreps pretrain --out OUT`` run::

    OUT/backbone.safetensors + backbone.json        single-encoder methods (simclr, moco, byol, dino,
                                                    mae, tile2vec): one encoder reading the
                                                    modalities stacked along channels
    OUT/backbone_<modality>.safetensors + .json     multimodal: one encoder per modality
    OUT/head_<key>.safetensors + .json              projection head of encoder <key> (simclr, moco, byol,
                                                    dino, multimodal): its output is the "joint" space
                                                    (:mod:`eoreps.ssl.heads`); none for mae, tile2vec, pretext
    OUT/encoders.json                               index: method, encoder key -> file, modalities;
                                                    spaces, heads (key -> file, output_dim)
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
    encoders = load_encoders("OUT")                 # {"s2": Backbone, "s1": Backbone} (an Encoders)
    z = encoders.embed(raw_s1, modality="s1", space="joint")  # aligned with the S2 joint embeddings
    fused = LateFusionEncoder(encoders)             # batch dict of normalised modalities -> concat features
    feats = fused(merged_normalizer(encoders)(raw_batch))   # (B, D_s2 + D_s1)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from eoreps.data.stats import BandStats, Normalizer
from eoreps.errors import ConfigError, DataError
from eoreps.io import read_json, write_json
from eoreps.models import Backbone, load_backbone, save_backbone
from eoreps.models.card import BackboneCard
from eoreps.ssl.heads import head_filename, load_head, save_head

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
            enc_card["group"] = {
                "encoder": key,
                "members": {
                    k: {"file": files[k], "modalities": module.encoder_inputs[k]} for k in module.encoders
                },
            }
        paths[key] = save_backbone(enc.float(), out / files[key], enc_card)
    heads = export_heads(module, out, card.get("method"))
    write_json(out / INDEX_FILE, {"method": card.get("method"), "late_fusion": not single,
                                  "encoders": {k: {"file": files[k], "modalities": module.encoder_inputs[k]}
                                               for k in module.encoders},
                                  "spaces": ["backbone", "joint"] if heads else ["backbone"], "heads": heads})
    return paths


def export_heads(module: Any, out: Path, method: str | None) -> dict[str, dict[str, Any]]:
    """Save the projection heads of ``module`` (``projection_heads()``) as ``head_<key>.safetensors`` + card;
    returns the ``heads`` entry of ``encoders.json`` (encoder key -> file and joint-space size)."""
    heads: dict[str, dict[str, Any]] = {}
    for key, (head, spec) in getattr(module, "projection_heads", dict)().items():
        card = {"method": method, "encoder": key, "modalities": list(module.encoder_inputs[key]),
                "input_dim": int(module.encoders[key].num_features)}
        save_head(head.float(), spec, out / head_filename(key), card)
        heads[key] = {"file": head_filename(key), "output_dim": spec.output_dim}
    return heads


SPACES = ("backbone", "joint")


class Encoders(dict[str, Backbone]):
    """The encoders of a run, ``{key: Backbone}`` as before (each with ``.card``), plus their projection
    heads.

    ``embed(x, modality=..., space="backbone" | "joint")`` runs one encoder (and, for ``"joint"``, its
    projection head) on raw inputs, normalised as its card says::

        enc = load_encoders("runs/mm")              # a multimodal run: keys s2, s1
        z1 = enc.embed({"s1": s1_raw}, modality="s1", space="joint")  # (B, D_joint), aligned with ...
        z2 = enc.embed(s2_raw, modality="s2", space="joint")          # ... the S2 embeddings

    Attributes:
        run: the run folder.
        method: the pretraining method (from ``encoders.json`` / the cards).
        heads: encoder key -> projection head (eval mode); empty for old exports and methods without one.
        head_cards: encoder key -> the head's card.
    """

    def __init__(self, encoders: Mapping[str, Backbone], run: str | Path, method: str | None = None,
                 heads: Mapping[str, nn.Module] | None = None,
                 head_cards: Mapping[str, dict[str, Any]] | None = None) -> None:
        super().__init__(encoders)
        self.run = Path(run)
        self.method = method
        self.heads = dict(heads or {})
        self.head_cards = dict(head_cards or {})
        self._norms: dict[str, Normalizer] = {}

    def spaces(self, key: str | None = None) -> list[str]:
        """The embedding spaces of encoder ``key`` (every encoder's when ``None``): ``backbone`` and,
        where a projection head was exported, ``joint``."""
        has_head = key in self.heads if key is not None else bool(self.heads) and set(self.heads) == set(self)
        return ["backbone", "joint"] if has_head else ["backbone"]

    def key(self, modality: str | None = None) -> str:
        """The encoder key of ``modality`` (``None``: the only encoder); a one-line error naming the run."""
        if modality is None:
            if len(self) == 1:
                return next(iter(self))
            raise DataError(f"{self.run}: the run has several encoders ({', '.join(self)}); pass modality=")
        if modality in self:
            return modality
        raise DataError(
            f"{self.run}: the run never saw modality '{modality}' (its encoders: {', '.join(self)}); "
            "pass one of those"
        )

    def dim(self, key: str, space: str = "backbone") -> int:
        """Size of the embeddings of encoder ``key`` in ``space``."""
        self._check_space(key, space)
        if space == "joint":
            return int(self.head_cards[key]["output_dim"])
        return int(self[key].num_features)

    def _check_space(self, key: str, space: str) -> None:
        if space not in SPACES:
            raise ConfigError(f"space '{space}' unknown; choose one of {', '.join(SPACES)}")
        if space == "joint" and key not in self.heads:
            raise DataError(
                f"{self.run}: no 'joint' space for encoder '{key}' (method {self.method} exported no "
                f"projection head); spaces: {', '.join(self.spaces(key))}"
            )

    def normalizer(self, key: str) -> Normalizer:
        """The input normaliser of encoder ``key`` (statistics from its card)."""
        if key not in self._norms:
            self._norms[key] = input_normalizer(self[key].card)
        return self._norms[key]

    def inputs(self, x: Mapping[str, torch.Tensor] | torch.Tensor, key: str) -> dict[str, torch.Tensor]:
        """``x`` as a dict of the modalities encoder ``key`` reads: a tensor is split by the card's band
        counts."""
        mods = self[key].card.input_stack
        if isinstance(x, Mapping):
            return {m: x[m] for m in mods if m in x}
        sizes = [len((self[key].card.normalization or {}).get(m, {}).get("mean", ())) for m in mods]
        if x.ndim < 2 or sum(sizes) != x.shape[1]:
            raise DataError(
                f"{self.run}: encoder '{key}' reads {'+'.join(mods)} with {sum(sizes)} channels, got a "
                f"tensor of shape {tuple(x.shape)}; pass (B, {sum(sizes)}, H, W) or a dict of modalities"
            )
        return dict(zip(mods, torch.split(x, sizes, dim=1), strict=True))

    @torch.no_grad()
    def embed(self, x: Mapping[str, torch.Tensor] | torch.Tensor, modality: str | None = None,
              space: str = "backbone", normalized: bool = False) -> torch.Tensor:
        """Embeddings ``(B, D)`` of one encoder in ``space`` (modules run in eval mode, no gradients).

        Args:
            x: a batch dict ``{modality: (B, C, H, W)}`` or the tensor of the encoder's (stacked) input, in
                physical units (normalised here as the card says) unless ``normalized``.
            modality: the encoder key (``s2``, ``s1``, ``s2+s1``); ``None`` for a run with one encoder.
            space: ``"backbone"`` (the encoder's pooled features) or ``"joint"`` (its projection head's
                output, the space the method aligned; S1 and S2 of a multimodal run meet there).
            normalized: ``x`` is already normalised.
        """
        return self.embed_spaces(x, modality, (space,), normalized)[space]

    @torch.no_grad()
    def embed_spaces(self, x: Mapping[str, torch.Tensor] | torch.Tensor, modality: str | None = None,
                     spaces: Sequence[str] = SPACES, normalized: bool = False) -> dict[str, torch.Tensor]:
        """:meth:`embed` in several ``spaces`` at once (the encoder runs once): ``{space: (B, D_space)}``."""
        key = self.key(modality)
        for space in spaces:
            self._check_space(key, space)
        batch = self.inputs(x, key)
        if not normalized:
            batch = self.normalizer(key)(batch)
        enc = self[key]
        modules = [enc, self.heads[key]] if "joint" in spaces else [enc]
        modes = [m.training for m in modules]
        try:
            for m in modules:
                m.eval()
            z = enc(stack_inputs(batch, enc.card))
            return {space: self.heads[key](z) if space == "joint" else z for space in spaces}
        finally:
            for m, mode in zip(modules, modes, strict=True):
                m.train(mode)


def load_encoders(out: str | Path, map_location: str | torch.device = "cpu") -> Encoders:
    """All encoders of a pretraining run folder (``{key: Backbone}``, each with ``.card``)
    and their projection heads (:class:`Encoders`; exports older than the heads load with the
    ``backbone`` space only)."""
    out = Path(out)
    index_path = out / INDEX_FILE
    if not index_path.is_file():
        if (out / "backbone.safetensors").is_file():
            bb = load_backbone(out / "backbone.safetensors", map_location)
            return Encoders({"+".join(bb.card.modalities or ["x"]): bb}, out, bb.card.method)
        raise DataError(
            f"{out}: no {INDEX_FILE} or backbone.safetensors; pass the --out folder of `eoreps pretrain`"
        )
    index = read_json(index_path)
    try:
        encoders = {k: load_backbone(out / v["file"], map_location) for k, v in index["encoders"].items()}
        loaded = {
            k: load_head(out / v["file"], str(map_location)) for k, v in (index.get("heads") or {}).items()
        }
    except (KeyError, TypeError, AttributeError):
        raise DataError(f"{index_path}: malformed encoder index; re-export the run") from None
    unknown = [k for k in loaded if k not in encoders]
    if unknown:
        raise DataError(f"{index_path}: head(s) {', '.join(unknown)} have no encoder; re-export the run")
    return Encoders(encoders, out, index.get("method"), {k: h for k, (h, _) in loaded.items()},
                    {k: c for k, (_, c) in loaded.items()})


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
        raise DataError(
            f"batch has no {missing} (keys: {', '.join(batch)}); the backbone was pretrained on {mods}"
        )
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
