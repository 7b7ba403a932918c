"""Published and one's own weights from local files, as eoreps backbones with a card.

Spec strings (:func:`load_external`), always with a local ``weights`` file (no hub access at run time):

* ``torchgeo:<WeightsEnum>.<MEMBER>`` (e.g. ``torchgeo:ResNet18_Weights.SENTINEL2_ALL_MOCO``): the enum of
  the installed torchgeo gives the architecture (its builder, which calls timm), ``in_chans``, the band
  names and the normalisation (the ``Normalize`` steps of ``weights.transforms``, composed into one
  mean / std in the weights' input units; other value transforms are listed in the card as
  ``skipped_transforms``). Only timm-built enums (ResNet*, ViT*) are supported; others are refused.
* ``timm:<model>`` (e.g. ``timm:resnet18``): a timm checkpoint; ``in_chans`` is read from the file's stem
  convolution, the first in the architecture's module order (no silent adaptation of the first layer).
* any eoreps backbone name (``cnn-small``): one's own checkpoint, e.g. a Lightning ``.ckpt``.

Files: ``.safetensors`` or anything ``torch.load(weights_only=True)`` reads (``.pth``, ``.pt``, ``.bin``,
``.ckpt``); a state dict nested under ``state_dict`` / ``model`` / ``module`` (Lightning, DDP) is unwrapped.
``key_map`` rewrites key prefixes (:func:`parse_key_map`): ``"backbone.="`` keeps the keys under
``backbone.`` without the prefix and drops every other key (projection heads, momentum encoders).
Loading is strict except for the classifier head and BatchNorm's ``num_batches_tracked`` counters (which
some files leave out): a missing or unexpected key is a one-line
:class:`~eoreps.errors.DataError` listing them (and the ``key_map`` that would fix a prefix).

The backbone gets a :class:`~eoreps.models.card.BackboneCard` like eoreps' own (``modalities``,
``band_names``, ``normalization``) plus ``external``: source, spec, weights file and sha256, the input
units the normalisation implies, the input size the weights were trained at and the key map;
:func:`import_backbone` saves it as an eoreps backbone folder that every command reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from eoreps.errors import ConfigError, DataError
from eoreps.models.bands import canonical_band
from eoreps.models.base import Backbone
from eoreps.models.card import BackboneCard, BackboneSpec
from eoreps.models.units import guess_units, is_sar

TORCHGEO = "torchgeo:"
_TIMM_BUILDERS = ("resnet", "vit")
"""Prefixes of the torchgeo builders that call timm (the others, e.g. torchvision's ``swin_v2_b``, do not)."""
_NESTED = ("state_dict", "model", "module", "net", "encoder")
_TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")


def is_external_spec(backbone: Any) -> bool:
    """True for a ``torchgeo:`` spec string (``timm:`` and registry names need ``weights`` to be external)."""
    return isinstance(backbone, str) and backbone.startswith(TORCHGEO)


# ------------------------------------------------------------------------------------------ key maps
def parse_key_map(key_map: str | Path | Mapping[str, str] | None) -> list[tuple[str, str]]:
    """Prefix rewrites ``[(old, new)]`` from ``"old=new,old2=new2"``, a mapping, or a YAML file of one.

    Raises:
        ConfigError: an entry without ``=``, or a YAML file that is not a mapping of strings.
    """
    if key_map is None or key_map == "":
        return []
    if isinstance(key_map, Mapping):
        return [(str(k), "" if v is None else str(v)) for k, v in key_map.items()]
    text = str(key_map)
    if text.endswith((".yaml", ".yml")) or Path(text).is_file():
        from eoreps.config import read_yaml

        data = read_yaml(Path(text), "key_map")
        if not isinstance(data, dict):
            raise ConfigError(f"{text}: a key map must be a mapping of key prefixes, e.g. 'backbone.': ''")
        return parse_key_map(data)
    rules = []
    for part in text.split(","):
        if "=" not in part:
            raise ConfigError(f"key_map={text}: entry '{part}' is not OLD=NEW (e.g. 'backbone.=' strips the "
                              "prefix backbone.)")
        old, new = part.split("=", 1)
        rules.append((old.strip(), new.strip()))
    return rules


def apply_key_map(state: dict[str, torch.Tensor], rules: list[tuple[str, str]],
                  where: str) -> dict[str, torch.Tensor]:
    """Rewrite key prefixes by ``rules`` (first match wins; keys matching no rule are dropped). Without
    rules a ``module.`` prefix shared by every key (DDP) is stripped."""
    if not rules:
        if state and all(k.startswith("module.") for k in state):
            return {k[len("module."):]: v for k, v in state.items()}
        return dict(state)
    out = {}
    for k, v in state.items():
        for old, new in rules:
            if k.startswith(old):
                out[new + k[len(old):]] = v
                break
    if not out:
        raise DataError(f"{where}: key_map keeps none of its keys (they start like {_sample(state)}); "
                        "give prefixes the file uses")
    return out


def _sample(keys: Any, n: int = 3) -> str:
    ks = list(keys)
    return ", ".join(ks[:n]) + (f" (+{len(ks) - n})" if len(ks) > n else "")


# ------------------------------------------------------------------------------------------ files
def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file (unwrapping ``state_dict`` / ``model`` / ``module`` nesting).

    Raises:
        DataError: missing, unreadable, or holding no tensors (one line naming the file).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: weights file not found; pass a local .pth/.ckpt/.safetensors file")
    import pickle

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        if p.suffix == ".safetensors":
            obj: Any = load_file(str(p))
        else:
            obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # weights_only refuses pickled objects (hyper-parameters, optimisers)
        raise DataError(f"{p}: holds Python objects besides tensors, which are not loaded (unsafe); if you "
                        "trust the file, save its state dict: torch.save(torch.load(FILE, weights_only=False)"
                        "['state_dict'], OUT)") from None
    except (RuntimeError, EOFError, ValueError, KeyError, SafetensorError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise DataError(f"{p}: cannot read weights ({first}); save them with "
                        "torch.save(model.state_dict(), PATH) or as .safetensors") from None
    while isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in _NESTED if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)} if isinstance(obj, Mapping) \
        else {}
    if not state:
        what = _sample(obj) if isinstance(obj, Mapping) else type(obj).__name__
        raise DataError(f"{p}: no tensors found (top level: {what}); pass a state dict or a checkpoint "
                        "holding one under 'state_dict'")
    return state


def _first_conv_in(state: Mapping[str, torch.Tensor], where: str,
                   probe: torch.nn.Module | None = None) -> int:
    """``in_chans`` from the first 4-D weight (the stem convolution or patch embedding).

    The first is taken in the module order of ``probe`` (the architecture built with defaults), not in
    the file's key order: safetensors sorts keys, which puts ``stages.*`` (a depthwise convolution in
    ConvNeXt, eoreps' cnn blocks) before ``stem.*``. Without a probe, or when the probe's stem key is not
    in the file, the file's first 4-D weight is used.
    """
    if probe is not None:
        stem = next((k for k, v in probe.state_dict().items() if v.dim() == 4 and k.endswith("weight")), None)
        if stem is not None and stem in state and state[stem].dim() == 4:
            return int(state[stem].shape[1])
    for k, v in state.items():
        if v.dim() == 4 and k.endswith("weight"):
            return int(v.shape[1])
    raise DataError(f"{where}: no convolution weight to read the input channels from; check key_map")


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], where: str,
              head: tuple[str, ...] = ()) -> None:
    """Load ``state`` into ``module`` strictly, except unexpected keys under the ``head`` prefixes.

    Raises:
        DataError: missing / unexpected keys or shape mismatches, one line (with a key_map hint).
    """
    own = module.state_dict()
    unexpected = [k for k in state if k not in own and not k.startswith(head or ("\0",))]
    # BatchNorm step counters are not weights (older torch and some exporters leave them out): kept at 0
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = [f"{len(missing)} missing ({_sample(missing)})" if missing else "",
                 f"{len(unexpected)} unexpected ({_sample(unexpected)})" if unexpected else "",
                 f"shape mismatch {shapes[0]} {tuple(state[shapes[0]].shape)} in the file, "
                 f"{tuple(own[shapes[0]].shape)} in the model" if shapes else ""]
        raise DataError(f"{where}: weights do not fit the architecture: "
                        f"{'; '.join(p for p in parts if p)}{_prefix_hint(unexpected, own)}")
    kept = {k: v for k, v in state.items() if k in own}
    module.load_state_dict({**{k: own[k] for k in own if k not in kept}, **kept}, strict=True)


def _prefix_hint(unexpected: list[str], own: Mapping[str, Any]) -> str:
    """``; pass key_map 'backbone.='`` when stripping one prefix makes the unexpected keys fit."""
    for k in unexpected:
        parts = k.split(".")
        for i in range(1, len(parts)):
            prefix, rest = ".".join(parts[:i]) + ".", ".".join(parts[i:])
            if rest in own:
                return f"; pass key_map '{prefix}=' to strip the prefix {prefix}"
    return "; pass key_map to rename the keys, or weights of this architecture"


# ------------------------------------------------------------------------------------------ torchgeo
def torchgeo_weights(spec: str) -> Any:
    """The torchgeo ``WeightsEnum`` member named by ``torchgeo:<Enum>.<MEMBER>``.

    Raises:
        ConfigError: torchgeo missing, or an unknown enum / member (with the valid names).
    """
    name = spec[len(TORCHGEO):]
    try:
        import torchgeo.models as tgm
    except ImportError:
        raise ConfigError(f"backbone '{spec}' needs torchgeo; pip install torchgeo") from None
    from eoreps.errors import unknown_name

    enum_name, _, member = name.partition(".")
    enums = [n for n in dir(tgm) if n.endswith("_Weights")]
    if enum_name not in enums:
        raise unknown_name("torchgeo weights enum", enum_name, enums)
    enum = getattr(tgm, enum_name)
    names = [w.name for w in enum]
    if member not in names:
        raise unknown_name(f"{enum_name} member", member, names)
    return enum[member]


def _torchgeo_builder(weights: Any) -> str:
    import torchgeo.models as tgm

    for name in tgm.list_models():
        try:
            if tgm.get_model_weights(name) is type(weights):
                return name
        except KeyError:  # builders without published weights (dofa_huge_patch14_224)
            continue
    raise ConfigError(f"torchgeo has no model builder for {type(weights).__name__}")


def _normalization(transforms: Any) -> tuple[list[float], list[float]] | None:
    """The ``Normalize`` steps of a torchgeo transform chain composed into one ``(mean, std)``:
    ``((x - m1) / s1 - m2) / s2 = (x - (m1 + s1 m2)) / (s1 s2)``."""
    mean: list[float] | None = None
    std: list[float] | None = None
    for t in list(transforms) if isinstance(transforms, torch.nn.Sequential) else []:
        if type(t).__name__ != "Normalize":
            continue
        m, s = [float(v) for v in t.mean], [float(v) for v in t.std]
        if mean is None or std is None:
            mean, std = m, s
            continue
        n = max(len(mean), len(m))
        mean, std, m, s = (_broadcast(v, n) for v in (mean, std, m, s))
        mean = [a + b * c for a, b, c in zip(mean, std, m, strict=True)]
        std = [a * b for a, b in zip(std, s, strict=True)]
    return (mean, std) if mean is not None and std is not None else None


def _broadcast(v: list[float], n: int) -> list[float]:
    return v * n if len(v) == 1 else v


def _input_size(transforms: Any) -> int | None:
    """The side of the crop (else resize) the weights were trained at (``size`` an int or a sequence)."""
    size = None
    for t in list(transforms) if isinstance(transforms, torch.nn.Sequential) else []:
        if type(t).__name__ in ("CenterCrop", "Resize") and getattr(t, "size", None):
            side = t.size
            size = int(side) if isinstance(side, int | float) else int(list(side)[0])
    return size


#: transform steps that change sizes, not values (recorded by :func:`_input_size`), or do nothing
_GEOMETRIC = ("CenterCrop", "Resize", "RandomResizedCrop", "Identity")


def _skipped_transforms(transforms: Any) -> list[str]:
    """Names of the value transforms other than ``Normalize`` (e.g. a clamp, a percentile stretch), which
    the card's normalisation does not reproduce: recorded in the card so the difference is visible."""
    steps = list(transforms) if isinstance(transforms, torch.nn.Sequential) else []
    return [type(t).__name__ for t in steps if type(t).__name__ not in ("Normalize", *_GEOMETRIC)]


def default_modality(bands: list[str] | None) -> str | None:
    """``s1`` for SAR bands, ``s2`` for Sentinel-2 band names, else ``None``."""
    if not bands:
        return None
    if is_sar(bands):
        return "s1"
    from eoreps.data.modalities import S2_L1C_BANDS

    return "s2" if all(b in S2_L1C_BANDS for b in bands) else None


def torchgeo_card(spec: str, modality: str | None = None) -> tuple[BackboneCard, dict[str, Any]]:
    """The card of a torchgeo enum from its metadata alone (no weights needed), and the builder options.

    Returns ``(card, {"builder": torchgeo model name, "kwargs": timm creation options})``.
    """
    w = torchgeo_weights(spec)
    meta = dict(w.meta)
    in_chans = meta.get("in_chans")
    if not isinstance(in_chans, int):
        raise ConfigError(f"backbone '{spec}': the enum gives no in_chans; it is not a timm-built model")
    bands = [canonical_band(b) for b in meta.get("bands") or []] or None
    sentinel = w.name.startswith(("SENTINEL1", "SENTINEL2"))  # Landsat's B1..B7 are not Sentinel-2 bands
    mod = modality or (default_modality(bands) if sentinel else None)
    norm = _normalization(w.transforms)
    normalization = None
    if norm is not None and mod is not None:
        n = len(bands) if bands else in_chans
        normalization = {mod: {"mean": _broadcast(norm[0], n), "std": _broadcast(norm[1], n)}}
    builder = _torchgeo_builder(w)
    kwargs: dict[str, Any] = {"dynamic_img_size": True} if builder.startswith("vit") else {}
    units = guess_units(*norm, sar=is_sar(bands)) if norm else "unknown"
    card = BackboneCard(
        backbone=BackboneSpec(f"timm:{builder}", in_chans, kwargs),
        method=str(meta.get("ssl_method") or "external"),
        modalities=[mod] if mod else None,
        band_names={mod: bands} if mod and bands else None,
        normalization=normalization,
        data=meta.get("dataset"),
        extra={"external": {"source": "torchgeo", "spec": spec, "units": units, "bands": bands,
                            "input_size": _input_size(w.transforms), "url": getattr(w, "url", None),
                            "skipped_transforms": _skipped_transforms(w.transforms) or None}},
    )
    return card, {"builder": builder, "kwargs": kwargs}


def _build_torchgeo(spec: str, modality: str | None) -> tuple[Backbone, BackboneCard]:
    import torchgeo.models as tgm

    from eoreps.models.timm_backbones import TimmBackbone

    card, how = torchgeo_card(spec, modality)
    refusal = (f"backbone '{spec}': torchgeo builds {how['builder']} without timm; only timm-built enums "
               "(ResNet*, ViT*) are supported (import other weights as timm:<model> or a state dict)")
    if not how["builder"].startswith(_TIMM_BUILDERS):  # torchvision's Swin, DOFA, CROMA ...: no in_chans
        raise ConfigError(refusal)
    try:
        model = tgm.get_model(how["builder"], weights=None, in_chans=card.backbone.in_chans, num_classes=0,
                              **how["kwargs"])
    except TypeError:  # a builder that does not take timm's options
        raise ConfigError(refusal) from None
    if not hasattr(model, "pretrained_cfg"):
        raise ConfigError(refusal)
    bb = TimmBackbone.wrap(model, card.backbone.in_chans)
    return bb, card


# ------------------------------------------------------------------------------------------ any spec
_PROBE_CHANS = 3
"""``in_chans`` of the architecture built to find its stem before the file's channel count is known."""


def _load_target(spec: str, bb: Backbone) -> torch.nn.Module:
    """The module a file of ``spec`` holds the keys of: the timm model inside a timm backbone, else ``bb``."""
    return getattr(bb, "model", bb) if spec.startswith("timm:") else bb


def load_external(
    spec: str,
    weights: str | Path,
    key_map: str | Path | Mapping[str, str] | None = None,
    modality: str | None = None,
    bands: list[str] | None = None,
    **kwargs: Any,
) -> Backbone:
    """Build the backbone of ``spec`` and load local ``weights`` into it; ``.card`` says what it is.

    Args:
        spec: ``torchgeo:<Enum>.<MEMBER>``, ``timm:<model>`` or an eoreps backbone name.
        weights: local weights file (see the module docstring for the formats).
        key_map: prefix rewrites of the file's keys (:func:`parse_key_map`).
        modality: the data modality the weights read (default: ``s2``/``s1`` from the bands).
        bands: band names the weights expect, for timm / own checkpoints (torchgeo's come from the enum).
        **kwargs: creation options of timm / registry backbones (``img_size`` ...).

    Returns:
        The backbone, with ``spec`` (rebuildable by :func:`~eoreps.models.io.load_backbone`) and ``card``.

    Raises:
        ConfigError: unknown spec; DataError: unreadable file or keys that do not fit.
    """
    from eoreps.digest import file_sha256
    from eoreps.models.registry import create_backbone

    where = str(weights)
    rules = parse_key_map(key_map)
    if is_external_spec(spec):  # an unsupported enum is refused before the file is read
        bb, card = _build_torchgeo(spec, modality)
        target: torch.nn.Module = bb.model  # type: ignore[assignment]
        state = apply_key_map(read_state_dict(weights), rules, where)
    else:
        state = apply_key_map(read_state_dict(weights), rules, where)
        if spec.startswith("timm:") and "pos_embed" in state:
            kwargs.setdefault("dynamic_img_size", True)  # ViTs: any input size (resampled positions)
        probe = create_backbone(spec, in_chans=_PROBE_CHANS, **kwargs)  # the stem's key, in module order
        in_chans = _first_conv_in(state, where, _load_target(spec, probe))
        bb = probe if in_chans == _PROBE_CHANS else create_backbone(spec, in_chans=in_chans, **kwargs)
        target = _load_target(spec, bb)
        canon = [canonical_band(b) for b in bands] if bands else None
        mod = modality or default_modality(canon)
        card = BackboneCard(
            backbone=BackboneSpec(bb.spec["name"], in_chans, {k: v for k, v in bb.spec.items()
                                                             if k not in ("name", "in_chans")}),
            method="external", modalities=[mod] if mod else None,
            band_names={mod: canon} if mod and canon else None,
            extra={"external": {"source": "timm" if spec.startswith("timm:") else "state_dict", "spec": spec,
                                "units": "unknown", "input_size": None}},
        )
    cfg = getattr(target, "pretrained_cfg", None) or {}
    head = tuple(f"{c}." for c in ([cfg["classifier"]] if isinstance(cfg.get("classifier"), str)
                                   else list(cfg.get("classifier") or [])))
    load_into(target, state, where, head)
    bb.spec = {"name": card.backbone.name, "in_chans": card.backbone.in_chans, **card.backbone.kwargs}
    card.extra["external"].update(weights_file=Path(weights).name, weights_sha256=file_sha256(Path(weights)),
                                  key_map=[list(r) for r in rules] or None)
    card.num_params = bb.num_params
    bb.card = card
    return bb


def import_backbone(spec: str, weights: str | Path, out: str | Path, **options: Any) -> Path:
    """:func:`load_external` then :func:`~eoreps.models.io.save_backbone` into ``out`` (a folder holding
    ``backbone.safetensors`` and ``backbone.json``); returns the weights path."""
    from eoreps.models.io import save_backbone

    bb = load_external(spec, weights, **options)
    return save_backbone(bb, Path(out), bb.card)


__all__ = [
    "apply_key_map",
    "default_modality",
    "import_backbone",
    "is_external_spec",
    "load_external",
    "load_into",
    "parse_key_map",
    "read_state_dict",
    "torchgeo_card",
    "torchgeo_weights",
]
