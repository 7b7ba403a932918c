"""Save and load backbones: safetensors weights plus a JSON card that says what they are.

``save_backbone(bb, "runs/simclr/backbone.safetensors", card)`` writes

* ``backbone.safetensors``: the weights (the card is embedded in its metadata as well);
* ``backbone.json``: the card, human-readable.

A card always has the keys of :data:`CARD_KEYS` (missing ones are ``null``) plus ``backbone`` (the
registry ``spec``: name, ``in_chans`` and creation options), ``num_params`` and ``format_version``;
extra keys are kept. The card is a :class:`~eoreps.models.card.BackboneCard` (typed; validated when
read). ``load_backbone(path)`` rebuilds the backbone from the card through
:func:`eoreps.models.registry.create_backbone`, loads the weights strictly and attaches the card as
``.card``. ``path`` may be the ``.safetensors`` file, the ``.json`` card or a folder holding
``backbone.safetensors``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from eoreps.errors import DataError
from eoreps.io import atomic_path, read_json, write_json
from eoreps.models.base import Backbone
from eoreps.models.card import CARD_KEYS, FORMAT_VERSION, BackboneCard

__all__ = ["CARD_KEYS", "FORMAT_VERSION", "BackboneCard", "load_backbone", "save_backbone"]


def _paths(path: str | Path) -> tuple[Path, Path]:
    p = Path(path)
    if p.is_dir() or p.suffix == "":
        p = p / "backbone.safetensors"
    if p.suffix == ".json":
        return p.with_suffix(".safetensors"), p
    return p, p.with_suffix(".json")


def _jsonable(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().tolist()
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):  # numpy arrays and scalars
        return v.tolist()
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, Path):
        return str(v)
    return v


def save_backbone(backbone: Backbone, path: str | Path,
                  card: dict[str, Any] | BackboneCard | None = None) -> Path:
    """Write ``backbone``'s weights (safetensors) and its card (JSON) atomically.

    Args:
        backbone: a backbone made by :func:`~eoreps.models.registry.create_backbone` (it needs ``spec``).
        path: ``.safetensors`` file or a folder (then ``folder/backbone.safetensors``).
        card: what the weights are (see :data:`CARD_KEYS`); values may be tensors or arrays.

    Returns:
        The path of the weights file.
    """
    from safetensors.torch import save_file

    if not getattr(backbone, "spec", None):
        raise DataError(
            f"{path}: this backbone has no spec; build it with eoreps.models.create_backbone to save it"
        )
    weights, card_path = _paths(path)
    spec = {k: v for k, v in backbone.spec.items() if k != "checkpoint"}
    full: dict[str, Any] = {k: None for k in CARD_KEYS}
    full.update(_jsonable(card.to_dict() if isinstance(card, BackboneCard) else dict(card or {})))
    full.update(backbone=_jsonable(spec), num_params=backbone.num_params, format_version=FORMAT_VERSION)
    full = BackboneCard.from_dict(full, source=str(card_path)).to_dict()  # what every reader will accept
    state = {k: v.detach().cpu().contiguous().clone() for k, v in backbone.state_dict().items()}
    with atomic_path(weights) as tmp:
        save_file(state, str(tmp), metadata={"eoreps_card": json.dumps(full)})
    write_json(card_path, full)
    return weights


def load_backbone(path: str | Path, map_location: str | torch.device = "cpu") -> Backbone:
    """Rebuild a saved backbone; the card is attached as ``.card`` (a :class:`BackboneCard`).

    Raises:
        DataError: a missing/corrupt file, or weights that do not match the card's architecture.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    from eoreps.models.registry import create_backbone

    weights, card_path = _paths(path)
    if not weights.is_file():
        raise DataError(
            f"{weights}: backbone weights not found; pass the .safetensors file written by save_backbone"
        )
    try:
        if card_path.is_file():
            card = read_json(card_path)
        else:  # the card is also embedded in the weights file
            with safe_open(str(weights), framework="pt") as f:
                card = json.loads((f.metadata() or {}).get("eoreps_card", "null"))
        state = load_file(str(weights), device=str(map_location))
    except (SafetensorError, OSError, json.JSONDecodeError) as e:
        raise DataError(f"{weights}: not a valid safetensors backbone ({e}); re-save it") from None
    card = BackboneCard.from_dict(card, source=str(card_path if card_path.is_file() else weights))
    name = card.backbone.name
    bb = create_backbone(name, in_chans=card.backbone.in_chans, **card.backbone.kwargs)
    try:
        missing, unexpected = bb.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatch
        raise DataError(
            f"{weights}: weights do not match backbone '{name}' ({str(e).splitlines()[-1].strip()}); "
            "the card or the file is wrong"
        ) from None
    if missing or unexpected:
        raise DataError(
            f"{weights}: weights do not match backbone '{name}' (missing {list(missing)[:3]}, "
            f"unexpected {list(unexpected)[:3]}); the card or the file is wrong"
        )
    bb.card = card
    return bb
