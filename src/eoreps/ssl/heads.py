"""Projection heads of the pretraining methods: built from a small spec, exported beside their encoder.

A method's projection head maps an encoder's features into the space its loss compares: for the
multimodal method (Dual-SimCLR) that is the space where S1 and S2 of one location meet (the *joint* space);
the backbone features of two separately trained encoders are not aligned. So ``eoreps pretrain`` saves each
head with its encoder (:func:`eoreps.ssl.export.export_encoders`)::

    OUT/head_<key>.safetensors   the head's weights (the card is embedded in the metadata as well)
    OUT/head_<key>.json          its card: {"format": "eoreps-head", "head": {"kind", "kwargs"}, "encoder",
                                 "modalities", "input_dim", "output_dim", "space": "joint", "method"}

``<key>`` is the encoder key with ``+`` written ``_`` (``s2``, ``s1``, ``s2_s1``). A head is rebuilt from
``kind`` (one of :data:`HEAD_KINDS`, lightly's projection heads) and the keyword arguments it was built
with, so loading needs no pickled code. Methods build their heads with
:meth:`eoreps.ssl.methods.base.SSLMethod.make_head`, which records the spec.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from eoreps.errors import DataError, unknown_name
from eoreps.io import atomic_path, read_json, write_json

HEAD_FORMAT = "eoreps-head"
HEAD_PREFIX = "head_"
#: head kind -> lightly class (in ``lightly.models.modules``); its ``output_dim`` argument is the output size
HEAD_KINDS = {"simclr": "SimCLRProjectionHead", "moco": "MoCoProjectionHead", "byol": "BYOLProjectionHead",
              "dino": "DINOProjectionHead"}


@dataclass(frozen=True)
class HeadSpec:
    """How to rebuild a projection head: ``kind`` (a key of :data:`HEAD_KINDS`) and its constructor
    ``kwargs``."""

    kind: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def output_dim(self) -> int:
        """Size of the head's output (the joint space)."""
        return int(self.kwargs["output_dim"])

    def build(self) -> nn.Module:
        """A fresh head of this spec."""
        import lightly.models.modules as lm

        if self.kind not in HEAD_KINDS:
            raise unknown_name("projection head", self.kind, list(HEAD_KINDS))
        return getattr(lm, HEAD_KINDS[self.kind])(**self.kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The card's ``head`` entry."""
        return {"kind": self.kind, "kwargs": dict(self.kwargs)}


def head_filename(key: str) -> str:
    """``head_<key>.safetensors`` (``+`` of a stacked key written ``_``)."""
    return f"{HEAD_PREFIX}{key.replace('+', '_')}.safetensors"


def is_head_file(path: str | Path) -> bool:
    """True for a projection head's weights file (so backbone globs skip it)."""
    name = Path(path).name
    return name.startswith(HEAD_PREFIX) and name.endswith(".safetensors")


def save_head(head: nn.Module, spec: HeadSpec, path: str | Path, card: dict[str, Any]) -> Path:
    """Write ``head``'s weights (safetensors, card in the metadata) and its JSON card atomically.

    Args:
        head: the module built from ``spec``.
        spec: how to rebuild it.
        path: the ``.safetensors`` file (the card goes beside it as ``.json``).
        card: what the head is (``encoder``, ``modalities``, ``input_dim``, ``method``, ...).
    """
    from safetensors.torch import save_file

    path = Path(path)
    full = {"format": HEAD_FORMAT, "format_version": 1, **card, "head": spec.to_dict(),
            "output_dim": spec.output_dim, "space": "joint"}
    state = {k: v.detach().cpu().contiguous().clone() for k, v in head.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"eoreps_head": json.dumps(full)})
    write_json(path.with_suffix(".json"), full)
    return path


def load_head(path: str | Path, map_location: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a saved head: ``(module in eval mode, card)``.

    Raises:
        DataError: a missing or corrupt file, a card that is not a head card, or weights that do not fit.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    card_path = path.with_suffix(".json")
    if not path.is_file():
        raise DataError(
            f"{path}: projection head weights not found; re-export the run with `eoreps pretrain`"
        )
    try:
        card = read_json(card_path) if card_path.is_file() else None
        if card is None:
            from safetensors.torch import safe_open

            with safe_open(str(path), framework="pt") as f:
                card = json.loads((f.metadata() or {}).get("eoreps_head", "null"))
        state = load_file(str(path), device=str(map_location))
    except (SafetensorError, OSError, json.JSONDecodeError) as e:
        raise DataError(
            f"{path}: not a valid safetensors head ({' '.join(str(e).split())}); re-export the run"
        ) from None
    head_entry = card.get("head") if isinstance(card, dict) else None
    if card is None or card.get("format") != HEAD_FORMAT or not isinstance(head_entry, dict):
        raise DataError(f"{card_path}: not an eoreps projection head card (format '{HEAD_FORMAT}'); "
                        "re-export the run")
    spec = HeadSpec(str(head_entry.get("kind")), dict(head_entry.get("kwargs") or {}))
    head = spec.build()
    try:
        missing, unexpected = head.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise DataError(f"{path}: weights do not match the {spec.kind} head of its card "
                        f"({str(e).splitlines()[-1].strip()}); re-export the run") from None
    if missing or unexpected:
        raise DataError(
            f"{path}: weights do not match the {spec.kind} head of its card (missing {list(missing)[:3]}, "
            f"unexpected {list(unexpected)[:3]}); re-export the run"
        )
    return head.eval(), card
