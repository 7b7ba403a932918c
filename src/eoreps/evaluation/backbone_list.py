"""A study's ``backbones:`` list (``eoreps study label-efficiency --backbones ...``): short backbone specs
turned into :class:`~eoreps.evaluation.methods.MethodSpec` entries, compared under the same protocols.

Each entry is one of

* ``random`` or ``random:<arch>``: a randomly initialised encoder (``arch`` default: the study's
  ``baseline_arch``), named ``random`` / ``random-<arch>``;
* a path to a saved eoreps backbone (a ``.safetensors`` file, a folder holding ``backbone.safetensors``, or a
  folder of per-modality backbones): named after the file, or after its folder when the file or folder is
  called ``backbone`` (``runs/simclr/backbone`` -> ``simclr``);
* an external spec ``<scheme>:<name>`` (``timm:resnet18``, ``torchgeo:<WeightsEnum>.<MEMBER>``) with its
  local weights file after ``@`` (``timm:resnet18@weights/r18.pth``: the method's ``weights`` field,
  :func:`eoreps.models.external.load_external`; nothing is downloaded): named ``<scheme>-<name>``;
* one's own checkpoint of a registered eoreps backbone, ``<name>@<file>`` (``cnn-small@runs/last.ckpt``):
  read like an external spec (``weights`` = the file), named ``<name>``;
* a mapping of :class:`MethodSpec` fields (``{name: ssl4eo, backbone: "torchgeo:...", weights: FILE}``);
  without ``name`` it is derived from ``backbone`` as above.

Names are made unique (``-2``, ``-3`` ...) against the study's other methods, and contain only letters,
digits, ``.``, ``_`` and ``-`` (they name the cell files).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from eoreps.config import load_dataclass
from eoreps.errors import ConfigError
from eoreps.evaluation.methods import MethodSpec

EXTERNAL_SCHEMES = ("timm", "torchgeo")
"""Prefixes of external backbone specs (``<scheme>:<name>``)."""


def split_list(text: str | Sequence[str]) -> list[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]`` (a list passes through, stripped, empty entries dropped)."""
    items = text.split(",") if isinstance(text, str) else [str(t) for t in text]
    return [t.strip() for t in items if t.strip()]


def _safe(name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return re.sub(r"_{2,}", "_", name) or "backbone"


def _scheme(spec: str) -> str | None:
    head = spec.split(":", 1)[0].lower()
    return head if ":" in spec and head in EXTERNAL_SCHEMES else None


def _own_checkpoint(spec: str) -> bool:
    """True for ``<registered backbone>@<file>`` (``cnn-small@own.ckpt``): a name and weights, not a path."""
    from eoreps.models.registry import is_backbone_name

    return "@" in spec and is_backbone_name(spec.split("@", 1)[0])


def default_name(backbone: Any) -> str:
    """The table label of a backbone spec (see the module docstring)."""
    if isinstance(backbone, dict):
        return _safe("+".join(str(k) for k in backbone))
    spec = str(backbone)
    if spec == "random" or spec.startswith("random:"):
        return _safe(spec.replace(":", "-"))
    if _scheme(spec) or _own_checkpoint(spec):
        return _safe(spec.split("@", 1)[0].replace(":", "-"))
    p = Path(spec)
    if p.stem == "backbone" and p.parent.name not in ("", "."):
        return _safe(p.parent.name)
    return _safe(p.stem or p.name)


def _entry_fields(entry: Any, arch: str) -> dict[str, Any]:
    """The :class:`MethodSpec` fields of one entry (without a unique name yet)."""
    if isinstance(entry, dict):
        fields = dict(entry)
        if "backbone" not in fields:
            raise ConfigError(f"backbones: entry {entry!r} has no 'backbone'; give e.g. "
                              "{name: simclr, backbone: runs/simclr/backbone}")
        fields.setdefault("name", default_name(fields["backbone"]))
        return fields
    if not isinstance(entry, (str, Path)) or not str(entry).strip():
        raise ConfigError(f"backbones: {entry!r} is not a backbone; give random, a saved backbone's path or "
                          "an external spec such as timm:resnet18")
    spec = str(entry).strip()
    if spec == "random" or spec.startswith("random:"):
        a = spec.split(":", 1)[1] if ":" in spec else arch
        return {"name": default_name(spec), "backbone": "random", "arch": a}
    if _scheme(spec) and "@" not in spec:
        raise ConfigError(f"backbones: {spec} needs its local weights file; write {spec}@FILE "
                          "(nothing is downloaded)")
    if _scheme(spec) or _own_checkpoint(spec):
        name, weights = spec.split("@", 1)
        return {"name": default_name(spec), "backbone": name, "weights": weights}
    return {"name": default_name(spec), "backbone": spec}


def backbone_methods(entries: Iterable[Any], arch: str = "cnn-small",
                     taken: Iterable[str] = ()) -> list[MethodSpec]:
    """One :class:`MethodSpec` per entry of a ``backbones:`` list (see the module docstring).

    Args:
        entries: strings, mappings or ready :class:`MethodSpec` objects (passed through).
        arch: architecture of ``random`` entries without one.
        taken: names already used by the study's other methods.

    Raises:
        ConfigError: an entry that is not a backbone spec, or a mapping with unknown fields.
    """
    used = set(taken)
    out = []
    for entry in entries:
        if isinstance(entry, MethodSpec):
            m = entry
        else:
            fields = _entry_fields(entry, arch)
            base, i = fields["name"], 2
            while fields["name"] in used and not isinstance(entry, dict):
                fields["name"], i = f"{base}-{i}", i + 1
            m = load_dataclass(MethodSpec, fields)
        used.add(m.name)
        out.append(m)
    return out
