"""What a compared method contributes: an encoder from a batch dict to features, built from a method spec.

A :class:`MethodSpec` is one of

* **pretrained** (``backbone: PATH``): backbone(s) saved with :func:`eoreps.models.save_backbone`. ``PATH``
  is a weights file, a folder holding ``backbone.safetensors``, a folder of several backbones (one per
  modality, as the multimodal pretraining exports them), or a mapping ``{name: path}``. Each backbone
  reads the modalities its card names (``card.modalities`` of its :class:`~eoreps.models.card.BackboneCard`),
  stacked in that order; features of several backbones are concatenated (late fusion of the pretrained
  encoders). Inputs are normalised with the statistics in the card when it has them, else with the
  evaluation training split's.
* **random** (``backbone: random``): the same kind of encoder, randomly initialised with the cell's seed:
  ``arch`` on ``modalities`` with ``fusion`` (``early``: one backbone on all channels; ``late``: one per
  modality), built by :func:`eoreps.models.fusion.build_encoder`.
* **supervised** (``supervised: true``): a random encoder as above trained end to end with a new head on
  the labelled subset (supervised training from scratch; protocol ``supervised``).
* **pretrained by the study** (``pretrain: {method: rotation, ...}``): the study first runs that
  self-supervised pretraining on its own training split, then evaluates the exported backbone like a
  pretrained one (:mod:`eoreps.evaluation.pretraining`).

Every encoder has the interface of :class:`eoreps.models.fusion.EarlyFusion`: ``forward(batch) -> (B, D)``,
``forward_all(batch) -> (pooled, maps)``, ``num_features``, ``feature_info`` and ``grid_size``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from eoreps.data.stats import BandStats
from eoreps.digest import file_sha256
from eoreps.errors import ConfigError, DataError
from eoreps.evaluation.data import EvalData
from eoreps.evaluation.methods import MethodSpec
from eoreps.models.base import Backbone
from eoreps.models.card import BackboneCard
from eoreps.ssl.heads import is_head_file


class BackboneEncoder(nn.Module):
    """Loaded backbones, each reading a stack of modalities; pooled features and maps concatenated.

    Args:
        backbones: group name -> backbone.
        groups: group name -> modalities stacked (in order) as that backbone's input.
        grid_size: ``(H, W)`` of the inputs (segmentation output size).
        adapters: optional group name -> module applied to the stacked input before the backbone
            (e.g. a spectral adapter, :mod:`eoreps.evaluation.protocols.adapter`).
    """

    def __init__(
        self,
        backbones: dict[str, Backbone],
        groups: dict[str, list[str]],
        grid_size: tuple[int, int],
        adapters: dict[str, nn.Module] | None = None,
    ) -> None:
        super().__init__()
        self.backbones = nn.ModuleDict(backbones)
        self.groups = {k: list(v) for k, v in groups.items()}
        self.grid_size = tuple(grid_size)
        self.adapters = nn.ModuleDict(adapters or {})
        self.num_features = sum(b.num_features for b in backbones.values())
        infos = [b.feature_info for b in backbones.values()]
        if any(len(i) != len(infos[0]) or [f["reduction"] for f in i] != [f["reduction"] for f in infos[0]]
               for i in infos):
            self.feature_info = infos[0] if len(infos) == 1 else []
            self._maps_ok = len(infos) == 1
        else:
            self.feature_info = [
                {"num_chs": sum(i[s]["num_chs"] for i in infos), "reduction": infos[0][s]["reduction"]}
                for s in range(len(infos[0]))
            ]
            self._maps_ok = True

    def _input(self, name: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = torch.cat([batch[m].float() for m in self.groups[name]], dim=1)
        if name in self.adapters:
            x = self.adapters[name](x)
        return x

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Batch of normalised modalities -> ``(B, num_features)``."""
        z = [bb(self._input(n, batch)) for n, bb in self.backbones.items()]
        return torch.cat(z, dim=1) if len(z) > 1 else z[0]

    def forward_all(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Pooled ``(B, num_features)`` and per-stage maps concatenated over backbones."""
        if not self._maps_ok:
            raise ConfigError(
                "these backbones have different stage layouts; segmentation needs matching feature maps"
            )
        outs = [bb.forward_all(self._input(n, batch)) for n, bb in self.backbones.items()]
        pooled = torch.cat([o[0] for o in outs], dim=1) if len(outs) > 1 else outs[0][0]
        maps = [
            torch.cat(level, dim=1) if len(level) > 1 else level[0]
            for level in zip(*[o[1] for o in outs], strict=True)
        ]
        return pooled, maps


# ------------------------------------------------------------------------------------ pretrained
def backbone_files(backbone: str | dict[str, str]) -> dict[str, Path]:
    """Resolve a pretrained ``backbone`` spec to ``{group name: weights file}``.

    A folder holding ``backbone.safetensors`` is one backbone; a folder without it but with several
    ``*.safetensors`` (each with its ``.json`` card) is one backbone per file, named by the file stem.
    """
    if isinstance(backbone, dict):
        out: dict[str, Path] = {}
        for k, v in backbone.items():
            files = backbone_files(str(v))
            if len(files) != 1:
                raise ConfigError(f"backbone '{k}': {v} holds {len(files)} backbones; point to one file")
            out[str(k)] = next(iter(files.values()))
        return out
    p = Path(backbone)
    if p.is_file():
        return {p.stem: p.with_suffix(".safetensors") if p.suffix == ".json" else p}
    if p.is_dir():
        if (p / "backbone.safetensors").is_file():
            return {"backbone": p / "backbone.safetensors"}
        found = sorted(f for f in p.glob("*.safetensors") if not is_head_file(f))  # heads: not backbones
        if found:
            return {f.stem: f for f in found}
        found = sorted(p.glob("*/backbone.safetensors"))
        if found:
            return {f.parent.name: f for f in found}
    raise DataError(
        f"{p}: no backbone found; pass a .safetensors file written by save_backbone, a folder holding "
        "backbone.safetensors, or a folder of per-modality backbones"
    )


@dataclass
class BuiltEncoder:
    """An encoder ready for a protocol.

    Attributes:
        encoder: the module (see the module docstring for its interface).
        stats: normalisation statistics to apply to the evaluation inputs (``None``: training split's).
        identity: what determines its weights (file hashes, or arch + seed), for cache keys.
        groups: backbone group -> modalities it reads (pretrained only).
        inputs: backbone group -> how the data reaches it: band mapping and units (pretrained only).
    """

    encoder: nn.Module
    stats: BandStats | None
    identity: dict[str, Any]
    groups: dict[str, list[str]] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)


def _group_modalities(
    name: str, card: BackboneCard, method: MethodSpec, data: EvalData, n_groups: int
) -> list[str]:
    mods: Any = card.modalities
    if isinstance(mods, str):
        mods = [mods]
    if not mods:
        if method.modalities and n_groups == 1:
            mods = list(method.modalities)
        elif name in data.modalities:
            mods = [name]
        else:
            raise DataError(f"backbone '{name}' of method '{method.name}': its card names no modalities; "
                            "give modalities: [...] in the method spec")
    missing = [m for m in mods if m not in data.modalities]
    if missing:
        raise DataError(
            f"backbone '{name}' of method '{method.name}' reads {missing[0]}, which the evaluation data "
            f"does not load ({', '.join(data.modalities)}); add it to the study's modalities"
        )
    return list(mods)


def _load_backbones(method: MethodSpec) -> dict[str, tuple[Backbone, Path]]:
    """``{group: (backbone, weights file)}`` of a pretrained method: eoreps backbone files, or one
    external backbone built from ``backbone`` (a spec) and ``weights``
    (:func:`eoreps.models.external.load_external`)."""
    from eoreps.models.io import load_backbone

    if method.weights is None:
        return {name: (load_backbone(path), path) for name, path in backbone_files(method.backbone).items()}
    from eoreps.models.external import load_external

    mods = method.modalities or []
    bb = load_external(str(method.backbone), method.weights, key_map=method.key_map,
                       modality=mods[0] if len(mods) == 1 else None)
    return {"backbone": (bb, Path(method.weights))}


def load_pretrained(method: MethodSpec, data: EvalData, allow_channel_mismatch: bool = False) -> BuiltEncoder:
    """Load the backbones of a pretrained method and wrap them in a :class:`BackboneEncoder`.

    The data's bands are mapped to the bands each card names and its units checked against the card's
    normalisation (:func:`eoreps.evaluation.input_plan.plan_inputs`; ``method.band_fill``,
    ``method.data_units``). ``allow_channel_mismatch`` lets an input adapter (spectral adapter) bridge a
    band count that differs from the backbone's ``in_chans``; otherwise a mismatch is a :class:`DataError`.
    """
    from eoreps.evaluation.input_plan import plan_inputs

    assert method.backbone is not None and method.backbone != "random"
    loaded = _load_backbones(method)
    backbones: dict[str, Backbone] = {}
    groups: dict[str, list[str]] = {}
    selects: dict[str, nn.Module] = {}
    stats_mean: dict[str, tuple[float, ...]] = {}
    stats_std: dict[str, tuple[float, ...]] = {}
    identity: dict[str, Any] = {}
    inputs: dict[str, str] = {}
    for name, (bb, path) in loaded.items():
        card: BackboneCard = bb.card
        mods = _group_modalities(name, card, method, data, len(loaded))
        plan = plan_inputs(card, mods, data, str(path), method.band_fill, method.data_units)
        if plan.channels != bb.in_chans and not allow_channel_mismatch:
            raise DataError(
                f"{path}: backbone reads {bb.in_chans} channels but {'+'.join(mods)} has {plan.channels} in "
                "this data; use the adapter protocol (spectral adapter) or matching modalities"
            )
        backbones[name], groups[name] = bb, mods
        if plan.select is not None:
            selects[name] = plan.select
        # keyed by the weights' bytes, so retrained weights never hit old features
        identity[name] = {"sha256": file_sha256(path), "modalities": mods}
        if plan.changed:  # only then, so the feature caches of unmapped backbones stay valid
            identity[name]["inputs"] = plan.report
        if method.weights is not None:  # the same file read through another key map is other weights
            identity[name]["external"] = [str(method.backbone), method.key_map]
        inputs[name] = "; ".join(plan.report)
        stats_mean.update(plan.mean)
        stats_std.update(plan.std)
    stats = None
    if stats_mean:
        base = data.train_stats()  # modalities the cards do not cover keep the evaluation data's statistics
        mean = {m: stats_mean.get(m, base.mean[m]) for m in base.mean}
        std = {m: stats_std.get(m, base.std[m]) for m in base.std}
        stats = BandStats(mean=mean, std=std)
    enc = BackboneEncoder(backbones, groups, data.grid_size, adapters=selects)
    return BuiltEncoder(enc, stats, {"kind": "pretrained", "backbones": identity}, groups, inputs)


def input_report(method: MethodSpec, data: EvalData) -> str:
    """How a pretrained method's inputs were fed (band mapping, units), one line for the results."""
    built = load_pretrained(method, data, allow_channel_mismatch=True)
    return " | ".join(f"{g}: {line}" if len(built.inputs) > 1 else line for g, line in built.inputs.items())


def method_inputs(method: MethodSpec, data: EvalData, seen: dict[str, dict[str, str]]) -> dict[str, str]:
    """``{"inputs": input_report(...)}`` for a pretrained method (computed once per method name into
    ``seen``), ``{}`` for others: the field of a study's cell records."""
    if method.kind != "pretrained":
        return {}
    if method.name not in seen:
        seen[method.name] = {"inputs": input_report(method, data)}
    return seen[method.name]


def build_random(method: MethodSpec, data: EvalData, seed: int) -> BuiltEncoder:
    """A randomly initialised fusion encoder (``arch``, ``modalities``, ``fusion``) seeded with ``seed``."""
    from eoreps.models.fusion import InputSpec, build_encoder

    mods = list(method.modalities or data.modalities)
    missing = [m for m in mods if m not in data.modalities]
    if missing:
        raise DataError(f"method '{method.name}' reads {missing[0]}, which the evaluation data does not load "
                        f"({', '.join(data.modalities)}); add it to the study's modalities")
    specs = []
    for m in mods:
        x = data.splits["train"].inputs[m]
        specs.append(InputSpec(m, data.channels(m), "image" if x.dim() == 4 else "vector"))
    torch.manual_seed(seed)
    enc = build_encoder(method.fusion, specs, method.arch, data.grid_size)
    identity = {
        "kind": method.kind,
        "arch": method.arch,
        "modalities": mods,
        "fusion": method.fusion,
        "seed": seed,
    }
    return BuiltEncoder(enc, None, identity)


def build_method_encoder(
    method: MethodSpec, data: EvalData, seed: int, allow_channel_mismatch: bool = False
) -> BuiltEncoder:
    """The encoder of ``method`` for one cell (random and supervised ones are seeded by ``seed``)."""
    if method.kind == "pretrained":
        return load_pretrained(method, data, allow_channel_mismatch)
    return build_random(method, data, seed)


def method_modalities(built: BuiltEncoder, method: MethodSpec, data: EvalData) -> Sequence[str]:
    """Modalities an encoder reads."""
    if built.groups:
        return [m for mods in built.groups.values() for m in mods]
    return list(method.modalities or data.modalities)
