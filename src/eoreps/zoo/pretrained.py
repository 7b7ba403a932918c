"""A zoo of self-supervised EO backbones: ``eoreps zoo build --from-pretraining SPEC.yaml --out DIR``. This
links the pillars: every member is one SSL pretraining run (:func:`eoreps.ssl.pretrain.run_pretrain` through
the study's runner :func:`eoreps.evaluation.pretraining.run_method_pretraining`: reused when finished,
resumed when interrupted), one point of the product of ``methods`` x ``seeds`` x ``data_fractions``; its
exported backbone is stored in the zoo format (one shard per member, at epoch = ``epochs``, the backbone's
whole state_dict in order, BatchNorm statistics included) and scored with the label-efficiency protocol: a
linear probe on the frozen backbone (:func:`eoreps.evaluation.protocols.run_protocol`, protocol ``linear``)
at each of ``probe_fractions`` of the evaluation training split, averaged over ``probe_seeds`` seeds, in
index columns ``probe_acc_1``, ``probe_acc_10`` (percent of labels). A hyper-representation (or the
baselines :func:`eoreps.hyper.features.weight_statistics` and :mod:`eoreps.hyper.probing_features`) then
predicts downstream accuracy from the weights alone.

SPEC.yaml (keys = :class:`PretrainZooSpec` fields)::

    methods: [simclr, byol, moco, rotation]
    seeds: [0, 1, 2]
    data_fractions: [0.25, 0.5, 1.0]     # of max_samples pretraining samples
    backbone: cnn-tiny
    epochs: 3
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eoreps.errors import ConfigError, unknown_name
from eoreps.progress import progress
from eoreps.zoo.backbones import BackboneArch
from eoreps.zoo.build import _jsonable
from eoreps.zoo.store import ZooStore, shard_name

PLAN_KEYS = ("architecture", "param_order", "spec", "members")


@dataclass
class PretrainZooSpec:
    """What a zoo of pretrained backbones holds (``--from-pretraining`` YAML keys).

    Attributes:
        methods, seeds, data_fractions: the members (their product, in this order).
        backbone, backbone_kwargs: one architecture for every member (a zoo holds one architecture).
        data, simeo_n, modalities: pretraining and probing data (image modalities stacked as channels).
        epochs, batch_size, lr, max_samples: pretraining settings; a member pretrains on
            ``round(data_fraction * max_samples)`` samples.
        pretrain: further :class:`eoreps.ssl.pretrain.PretrainConfig` options (e.g. ``method_kwargs``).
        probe_fractions, probe_seeds: label fractions and seeds of the linear probes.
        limits: at most this many evaluation samples per split (``{"train": 1000}``).
        quick: a smoke run (set by ``--quick``; shrinks epochs, samples and splits).
    """

    methods: list[str] = field(default_factory=lambda: ["simclr", "byol", "moco", "rotation"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    data_fractions: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0])
    backbone: str = "cnn-tiny"
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    data: str = "simeo"
    simeo_n: int = 2000
    modalities: list[str] = field(default_factory=lambda: ["s2"])
    epochs: int = 3
    batch_size: int = 64
    lr: float = 2e-3
    max_samples: int = 1024
    pretrain: dict[str, Any] = field(default_factory=dict)
    probe_fractions: list[float] = field(default_factory=lambda: [0.01, 0.1])
    probe_seeds: int = 2
    limits: dict[str, int] = field(default_factory=dict)
    quick: bool = False

    def validate(self, where: str = "from_pretraining") -> PretrainZooSpec:
        """One-line :class:`ConfigError` for unknown methods or backbones and out-of-range values."""
        from eoreps.models.registry import canonical_backbone_name
        from eoreps.ssl.methods.registry import list_methods

        for m in self.methods:
            if m not in list_methods():
                raise ConfigError(f"{where}: {unknown_name('method', m, list_methods()).args[0]}")
        if not self.backbone.startswith("timm:"):
            self.backbone = canonical_backbone_name(self.backbone)
        for f in [*self.data_fractions, *self.probe_fractions]:
            if not 0.0 < f <= 1.0:
                raise ConfigError(f"{where}: fraction {f} outside (0, 1]")
        for name in ("methods", "seeds", "data_fractions", "probe_fractions", "modalities"):
            if not getattr(self, name):
                raise ConfigError(f"{where}: '{name}' has no values")
        if self.epochs < 1 or self.max_samples < 1 or self.probe_seeds < 1:
            raise ConfigError(f"{where}: epochs, max_samples and probe_seeds must be >= 1")
        return self

    def members(self) -> list[dict[str, Any]]:
        """``[{model_id, method, seed, data_fraction, pretrain_samples}, ...]`` in product order."""
        return [
            {
                "model_id": i,
                "method": m,
                "seed": int(s),
                "data_fraction": float(f),
                "pretrain_samples": max(1, int(round(f * self.max_samples))),
            }
            for i, (m, s, f) in enumerate(itertools.product(self.methods, self.seeds, self.data_fractions))
        ]


def load_pretrain_zoo_spec(source: str | Path | dict[str, Any], quick: bool = False) -> PretrainZooSpec:
    """The spec from a YAML file or dict; ``quick`` shrinks it to a smoke run (1 epoch, 128 samples, small
    splits, one probe seed)."""
    from eoreps.config import load_dataclass

    spec = load_dataclass(PretrainZooSpec, source)
    if quick or spec.quick:
        spec = dataclasses.replace(
            spec,
            quick=True,
            epochs=1,
            max_samples=min(spec.max_samples, 128),
            batch_size=min(spec.batch_size, 32),
            simeo_n=min(spec.simeo_n, 1000),
            probe_seeds=1,
            limits={
                s: min(int(spec.limits.get(s, n)), n)
                for s, n in {"train": 400, "val": 150, "test": 200}.items()
            },
        )
    return spec.validate(str(source) if isinstance(source, (str, Path)) else "from_pretraining")


def probe_column(fraction: float) -> str:
    """Index column of the probe at ``fraction`` of the labels: ``probe_acc_1`` for 0.01, ``probe_acc_10``
    for 0.1."""
    return f"probe_acc_{round(fraction * 100, 6):g}"


def _pretrain_data(spec: PretrainZooSpec) -> str:
    """The pretraining data path (``simeo``: the cached folder the probes' evaluation data reads)."""
    if spec.data == "simeo":
        from eoreps.data.simeo.io import cached_simeo

        return str(cached_simeo(spec.simeo_n, seed=0))
    return str(Path(spec.data).resolve())


def _split_options(spec: PretrainZooSpec, seed: int) -> dict[str, Any]:
    """Dataset options that split the pretraining data as the probes' evaluation data: a source whose
    automatic split is seeded (a GeoTIFF folder without a split column) gets ``split_seed`` = the build's
    ``seed``, not the member's, so that no member pretrains on the probes' test images."""
    if spec.data == "simeo":
        return {}
    from eoreps.data.formats import FORMAT_REGISTRY, detect_format

    return {"split_seed": seed} if FORMAT_REGISTRY.get(detect_format(Path(spec.data))).seeded_split else {}


def _pretrain(spec: PretrainZooSpec, member: dict[str, Any], out: Path, seed: int = 0) -> Path:
    """Run (or reuse, or resume) one member's pretraining (the data split by the build's ``seed``);
    returns its backbone weights file."""
    from eoreps.config import load_dataclass
    from eoreps.evaluation.encoders import backbone_files
    from eoreps.evaluation.pretraining import run_method_pretraining
    from eoreps.ssl.pretrain import PretrainConfig

    options = {
        "method": member["method"],
        "data": _pretrain_data(spec),
        "modalities": list(spec.modalities),
        "backbone": spec.backbone,
        "backbone_kwargs": dict(spec.backbone_kwargs),
        "epochs": spec.epochs,
        "batch_size": spec.batch_size,
        "lr": spec.lr,
        "max_samples": member["pretrain_samples"],
        "seed": member["seed"],
        "knn": False,
        "quick": spec.quick,
        "quick_keep": ["epochs", "batch_size", "max_samples"],
        **spec.pretrain,
        "data_options": {**_split_options(spec, seed), **dict(spec.pretrain.get("data_options") or {})},
        "out": str(out / "pretrain" / f"m{member['model_id']:05d}"),
        "resume": False,
    }
    run = run_method_pretraining(load_dataclass(PretrainConfig, options))
    files = backbone_files(str(run))
    if len(files) != 1:
        raise ConfigError(
            f"{run}: method '{member['method']}' exported {len(files)} backbones; a zoo member is "
            f"one backbone (use a single-encoder method or one modality)"
        )
    return next(iter(files.values()))


def _weights(arch: BackboneArch, path: Path, method: str) -> torch.Tensor:
    """The (D,) weight vector of a saved backbone in the zoo's parameter order; a backbone of another
    architecture is a one-line :class:`ConfigError` (a zoo holds one architecture)."""
    from eoreps.models.io import load_backbone

    state = load_backbone(path).state_dict()
    shapes = [(k, tuple(v.shape)) for k, v in state.items()]
    if shapes != arch.param_shapes():
        raise ConfigError(
            f"{path}: the backbone of method '{method}' differs from the zoo's {arch.backbone} "
            f"({arch.num_params} values); a zoo holds one architecture: give every run the same "
            f"backbone and modalities"
        )
    return torch.cat([v.detach().reshape(-1).float() for v in state.values()])


def _probe(
    data: Any, path: Path, member: dict[str, Any], spec: PretrainZooSpec, subsets: dict, cache: Path
) -> dict[str, float]:
    """Linear-probe accuracies (mean over the probe seeds) at every probe fraction."""
    from eoreps.evaluation.methods import MethodSpec
    from eoreps.evaluation.protocols import Cell, run_protocol

    method = MethodSpec(name=f"m{member['model_id']:05d}", backbone=str(path))
    out = {}
    for f in spec.probe_fractions:
        accs = [
            run_protocol(Cell(data, method, "linear", f, s, subsets[s][f], cache_dir=cache))["oa"]
            for s in range(spec.probe_seeds)
        ]
        out[probe_column(f)] = float(np.mean(accs))
    return out


def build_pretrained_zoo(spec: PretrainZooSpec, out: str | Path, seed: int = 0) -> dict[str, Any]:
    """Build (or resume) the zoo of pretrained backbones ``spec`` describes in ``out``; returns a summary.

    Resumable per member: a member whose shard verifies is skipped; an interrupted pretraining resumes.
    """
    from eoreps.evaluation.data import load_eval_data

    t0, out = time.perf_counter(), Path(out)
    data = load_eval_data(
        spec.data, "classify", spec.modalities, limits=spec.limits, simeo_n=spec.simeo_n, seed=seed
    )
    in_shape = (sum(data.channels(m) for m in spec.modalities), *data.grid_size)
    arch = BackboneArch(spec.backbone, in_shape, len(data.classes), spec.backbone_kwargs, head=False)
    members = spec.members()
    manifest = {
        "kind": "pretrained",
        "architecture": arch.name,
        "backbone": arch.spec(),
        "in_shape": list(arch.in_shape),
        "num_classes": None,
        "num_params": arch.num_params,
        "param_order": [[k, list(s)] for k, s in arch.param_shapes()],
        "spec": dataclasses.asdict(spec),
        "dataset": {"name": spec.data, "synthetic": bool(data.synthetic), "classes": list(data.classes)},
        "dataset_spec": None,
        "epochs": spec.epochs,
        "seed": seed,
        "members": members,
        "n_models": len(members),
        "chunks": [[m["model_id"]] for m in members],
    }
    store = ZooStore(out)
    if store.exists():
        store.remove_partial_writes()
        old = store.read_manifest()
        diff = [k for k in PLAN_KEYS if old.get(k) != _jsonable(manifest[k])]
        if diff:
            raise ConfigError(
                f"{out}: holds a zoo built with other options (differs in {', '.join(diff)}); "
                f"use a new output folder or repeat the original options to resume"
            )
    else:
        store.write_manifest(manifest)
    subsets = {s: data.fraction_indices(spec.probe_fractions, s) for s in range(spec.probe_seeds)}
    names = [shard_name(m["model_id"], spec.epochs) for m in members]
    todo = [m for m, n in zip(members, names, strict=True) if not store.verify_shard(n)]
    for m in progress(todo, desc="zoo from pretraining", unit="backbone"):
        path = _pretrain(spec, m, out, seed)
        w = _weights(arch, path, m["method"])
        row = {
            **m,
            "epoch": spec.epochs,
            "arch": arch.name,
            "dataset": spec.data,
            **_probe(data, path, m, spec, subsets, out / "cache"),
        }
        store.write_shard(m["model_id"], spec.epochs, [m["model_id"]], w[None], [row])
    index = store.write_index(0, 0, names=names)
    return {
        "out": str(out),
        "n_models": len(members),
        "members_trained": len(todo),
        "rows": len(index),
        "probe_columns": ",".join(probe_column(f) for f in spec.probe_fractions),
        "seconds": round(time.perf_counter() - t0, 2),
        **({"smoke_run": True} if spec.quick else {}),
    }
