"""The backbone card: what a saved backbone is, as a typed contract between the pillars.

A card is written next to every saved backbone (``backbone.json``, and embedded in the safetensors
metadata) by :func:`eoreps.models.io.save_backbone`; the SSL export (:mod:`eoreps.ssl.export`) fills it,
the evaluation (:mod:`eoreps.evaluation.encoders`) and the study read it. Every reader goes through
:class:`BackboneCard`, so a renamed or missing key is a one-line :class:`~eoreps.errors.DataError`
naming the card file, never a silent fall-back to another normalisation.

JSON layout (``format_version`` 1, unchanged)::

    method, modalities, band_names, normalization, data, epochs, metrics   always present (null if unknown)
    backbone: {name, in_chans, **creation kwargs}                          required
    num_params, format_version                                             written by save_backbone
    steps, input {stack, image_size, nan_fill, normalize}, group,          written by eoreps pretrain
    pretrain_modalities, seed, config
    any other key                                                          kept as is (``extra``)

Unknown keys are kept because :func:`~eoreps.models.io.save_backbone` has always accepted extra card
entries; an unknown key that looks like a misspelt known one (``normalisation``) is an error.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from eoreps.errors import DataError

FORMAT_VERSION = 1
CARD_KEYS = ("method", "modalities", "band_names", "normalization", "data", "epochs", "metrics")
"""Keys every card has: pretraining/training method, modality names, band names per modality,
normalisation statistics (e.g. ``{"s2": {"mean": [...], "std": [...]}}``), data set description,
number of epochs, final metrics."""
_PRETRAIN = ("steps", "pretrain_modalities", "seed", "config", "input", "group")  # written by eoreps pretrain
_OPTIONAL = ("num_params", "format_version", *_PRETRAIN)
_KNOWN = ("backbone", *CARD_KEYS, *_OPTIONAL)


@dataclass
class BackboneSpec:
    """How to rebuild the backbone: registry ``name``, ``in_chans`` and the creation ``kwargs``."""

    name: str
    in_chans: int
    kwargs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The card's ``backbone`` entry (kwargs flattened next to name and in_chans)."""
        return {"name": self.name, "in_chans": self.in_chans, **self.kwargs}


@dataclass
class BackboneCard:
    """A backbone card (see the module docstring for the JSON keys).

    Attributes:
        backbone: :class:`BackboneSpec`.
        method, modalities, band_names, normalization, data, epochs, metrics: the :data:`CARD_KEYS`.
        num_params, format_version: written by :func:`~eoreps.models.io.save_backbone`.
        steps, input, group, pretrain_modalities, seed, config: written by ``eoreps pretrain``.
        extra: any other key of the JSON, kept as is.
    """

    backbone: BackboneSpec
    method: str | None = None
    modalities: list[str] | None = None
    band_names: dict[str, list[str]] | None = None
    normalization: dict[str, dict[str, list[float]]] | None = None
    data: Any = None
    epochs: int | None = None
    metrics: dict[str, Any] | None = None
    num_params: int | None = None
    format_version: int = FORMAT_VERSION
    steps: int | None = None
    input: dict[str, Any] | None = None
    group: dict[str, Any] | None = None
    pretrain_modalities: list[str] | None = None
    seed: int | None = None
    config: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ reading and writing
    @classmethod
    def from_dict(cls, d: Any, source: str = "backbone card") -> BackboneCard:
        """Validate a card read from ``source`` (a file name, for the error messages).

        Raises:
            DataError: not a mapping, a required key missing, a known key misspelt, or a malformed
                ``backbone`` / ``normalization`` entry (one line naming ``source``).
        """
        if not isinstance(d, dict) or "backbone" not in d:
            raise DataError(f"{source}: card without a 'backbone' entry; "
                            "re-save with eoreps.models.save_backbone")
        unknown = [k for k in d if k not in _KNOWN]
        for k in unknown:
            near = difflib.get_close_matches(k, _KNOWN, n=1, cutoff=0.8)
            if near and near[0] not in d:
                raise DataError(f"{source}: card key '{k}' is not known; did you mean '{near[0]}'? "
                                "(rename it in the card)")
        missing = [k for k in CARD_KEYS if k not in d]
        if missing:
            renamed = f" (it has the unknown key(s) {', '.join(unknown)}: renamed?)" if unknown else ""
            raise DataError(f"{source}: card lacks the key(s) {', '.join(missing)}{renamed}; "
                            "give them (null if unknown) or re-save with eoreps.models.save_backbone")
        bb = d["backbone"]
        if not isinstance(bb, dict) or "name" not in bb or "in_chans" not in bb:
            raise DataError(f"{source}: card 'backbone' needs name and in_chans; re-save with "
                            "eoreps.models.save_backbone")
        _check_normalization(d["normalization"], source)
        spec = BackboneSpec(str(bb["name"]), int(bb["in_chans"]),
                            {k: v for k, v in bb.items() if k not in ("name", "in_chans")})
        known = {k: d[k] for k in (*CARD_KEYS, *_OPTIONAL) if k in d}
        if known.get("format_version") is None:
            known.pop("format_version", None)
        return cls(backbone=spec, **known, extra={k: d[k] for k in unknown})

    def to_dict(self) -> dict[str, Any]:
        """The JSON layout :meth:`from_dict` reads (and :func:`~eoreps.models.io.save_backbone` writes)."""
        out: dict[str, Any] = {k: getattr(self, k) for k in CARD_KEYS}
        out.update({k: getattr(self, k) for k in _PRETRAIN if getattr(self, k) is not None})
        out.update(self.extra)
        out.update(backbone=self.backbone.to_dict(), num_params=self.num_params,
                   format_version=self.format_version)
        return out

    # ------------------------------------------------------------------ what readers need
    @property
    def input_stack(self) -> list[str]:
        """The modalities stacked along channels, in order (``input.stack``, else ``modalities``)."""
        return list((self.input or {}).get("stack") or self.modalities or [])

    @property
    def nan_fill(self) -> float:
        """The value non-finite inputs are replaced with (``input.nan_fill``, default 0)."""
        return float((self.input or {}).get("nan_fill", 0.0))

    # ------------------------------------------------------------------ dict-style access (older callers)
    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.to_dict()

    def get(self, key: str, default: Any = None) -> Any:
        """``card.get(key)`` as on the plain dict older code received; prefer the attributes."""
        return self.to_dict().get(key, default)


def _check_normalization(norm: Any, source: str) -> None:
    if norm is None:
        return
    ok = isinstance(norm, dict) and all(
        isinstance(s, dict) and isinstance(s.get("mean"), list) and isinstance(s.get("std"), list)
        and len(s["mean"]) == len(s["std"]) for s in norm.values())
    if not ok:
        raise DataError(f"{source}: card 'normalization' must map each modality to "
                        "{mean: [...], std: [...]} of equal length; re-export the backbone")


__all__ = ["CARD_KEYS", "FORMAT_VERSION", "BackboneCard", "BackboneSpec"]
