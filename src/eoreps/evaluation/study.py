"""The resumable label-efficiency study: methods x protocols x label budgets x seeds.

A **cell** is one (method, protocol, label budget, seed); a budget is a label fraction (key
``<method>__<protocol>__f<fraction>__s<seed>``) or a k-shot episode of ``k`` labelled samples per class
(``...__k<k>__s<seed>``, :func:`eoreps.data.splits.kshot_indices`). The key names the cell's result file
``<out>/cells/<key>.json``, written atomically once the cell has finished (after its test predictions,
``<key>.npz``, from which :mod:`eoreps.evaluation.study_ci` bootstraps confidence intervals). The file
also stores a hash of everything that determines the result (method spec, protocol options, data
settings); a study started again skips every cell whose file exists with the same hash, so a killed
study resumes where it stopped and a finished cell is never recomputed (changed settings do recompute).

The label-fraction subsets are drawn once per seed from the training labels
(:meth:`EvalData.fraction_indices`: stratified, nested, fixed per seed) and shared by every method and
protocol, and so are the k-shot episodes (``shots``); each cell records a hash of its subset
(``subset_sha``) so this can be checked.

The compared methods are ``methods`` (full :class:`MethodSpec` mappings) plus ``backbones``: a short list
of backbones to compare under the same protocols (``random``, saved eoreps backbones, external weights;
:mod:`eoreps.evaluation.backbone_list`).

After the grid, :func:`write_outputs` gathers the cell files into ``results.parquet`` / ``results.csv``
(one row per cell), the published-format markdown tables (``tables.md``), the label-efficiency plot
(``label_efficiency.png``) and ``report.html``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eoreps.config import load_dataclass
from eoreps.digest import bytes_digest, digest
from eoreps.errors import ConfigError, DataError
from eoreps.evaluation.data import EvalData, load_eval_data
from eoreps.evaluation.encoders import backbone_files, method_inputs
from eoreps.evaluation.methods import MethodSpec
from eoreps.evaluation.pretraining import check_pretraining, pretrain_methods, quick_pretraining
from eoreps.evaluation.protocols import (
    PROTOCOL_REGISTRY,
    Cell,
    ProtocolOptions,
    check_protocol,
    protocol_info,
    run_protocol,
)
from eoreps.evaluation.study_ci import save_predictions
from eoreps.io import read_json, write_json
from eoreps.models.card import BackboneCard
from eoreps.precision import announce, precision_record, requested, resolve_auto
from eoreps.progress import progress
from eoreps.smoke import smoke_fields
from eoreps.tasks.noise import check_noise, corrupt_targets


@dataclass
class DataConfig:
    """Which data a study evaluates on.

    Attributes:
        data: ``"simeo"`` or a dataset path.
        task: ``classify``, ``multilabel`` or ``segment``.
        modalities: modalities loaded (methods read subsets of them).
        size: resize images to ``size x size`` (``None``: native size).
        crop: keep the centred ``crop x crop`` px of each patch, before any resize (``None``: the full patch).
        limits: at most this many samples per split, e.g. ``{"train": 1000, "test": 500}``.
        simeo_n: SimEO patches generated (``data: simeo`` only).
        options: extra options of the dataset loader.
        loader: ``"stream"`` (read a pack; another source is packed once into the cache) or ``"memory"``
            (:func:`~eoreps.evaluation.data.load_eval_data`); the same samples either way.
    """

    data: str = "simeo"
    task: str = "classify"
    modalities: list[str] = field(default_factory=lambda: ["s2", "s1"])
    size: int | None = None
    crop: int | None = None
    limits: dict[str, int] = field(default_factory=dict)
    simeo_n: int = 2000
    options: dict[str, Any] = field(default_factory=dict)
    loader: str = "stream"


@dataclass
class StudyConfig:
    """A label-efficiency study (the YAML of ``eoreps study label-efficiency --config``).

    Attributes:
        name: title of the report.
        data: :class:`DataConfig`.
        methods: method specs (:class:`~eoreps.evaluation.encoders.MethodSpec` fields as mappings).
        protocols: protocols applied to every representation method (supervised methods use ``supervised``).
        fractions: label fractions of the training split.
        shots: k-shot episodes (``k`` labelled training samples per class, e.g. ``[1, 5, 10]``), evaluated
            beside the fractions; nested across ``k`` and fixed per seed.
        backbones: backbones compared with the study's protocols, each a string (``random``, a saved
            backbone's path, an external spec) or a :class:`MethodSpec` mapping
            (:func:`eoreps.evaluation.backbone_list.backbone_methods`); added after ``methods``.
        seeds: number of seeds (``seed, seed + 1, ...``) or an explicit list.
        seed: first seed.
        baselines: add random initialisation (same architecture and protocols as the first pretrained
            method, or ``baseline_arch``) and supervised training from scratch on each modality alone,
            early fusion and late fusion.
        baseline_arch: architecture of the baselines when no pretrained method says it.
        options: protocol options (``linear``, ``knn``, ``train``, ``adapter``).
        label_noise, noise_kind: corrupt this fraction of the *training* labels (``uniform`` | ``class``,
            :mod:`eoreps.tasks.noise`), drawn once per seed and shared by every method; val/test stay clean.
        smoke: set by ``--quick`` (:func:`quick_study`): how small the smoke run is; its tables, report and
            ``study.json`` then say that the numbers are not a measurement (:mod:`eoreps.smoke`).
    """

    name: str = "Label-efficiency study"
    data: DataConfig = field(default_factory=DataConfig)
    methods: list[Any] = field(default_factory=list)
    protocols: list[str] = field(default_factory=lambda: ["linear", "finetune"])
    fractions: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0])
    shots: list[int] = field(default_factory=list)
    backbones: list[Any] = field(default_factory=list)
    seeds: int | list[int] = 3
    seed: int = 0
    baselines: bool = False
    baseline_arch: str = "cnn-small"
    options: ProtocolOptions = field(default_factory=ProtocolOptions)
    label_noise: float = 0.0
    noise_kind: str = "uniform"
    smoke: str = ""

    def __post_init__(self) -> None:
        check_noise(self.label_noise, self.noise_kind)
        if isinstance(self.data, dict):
            self.data = load_dataclass(DataConfig, self.data)
        from eoreps.evaluation.data import TASKS
        from eoreps.vocabulary import normalize_task

        self.data.task = normalize_task(self.data.task, TASKS)  # 'single' / 'multi' are accepted too
        if self.data.size is not None and self.data.size < 1:
            raise ConfigError(f"data.size={self.data.size}: the image side must be >= 1 (0 = native size)")
        if isinstance(self.options, dict):
            self.options = load_dataclass(ProtocolOptions, self.options)
        self.methods = [m if isinstance(m, MethodSpec) else _method(m) for m in self.methods]
        from eoreps.data.splits import check_shots
        from eoreps.evaluation.backbone_list import backbone_methods

        self.shots = check_shots(self.shots)
        self.backbones = backbone_methods(self.backbones, self.baseline_arch,
                                          taken=[m.name for m in self.methods])
        representation = [
            p for p in PROTOCOL_REGISTRY.names() if protocol_info(p).method_kinds != ("supervised",)
        ]
        for p in self.protocols:
            if p not in representation:
                raise ConfigError(f"protocols: '{p}' is not one of {', '.join(representation)} "
                                  "(supervised methods get protocol 'supervised' automatically)")

    @property
    def seed_list(self) -> list[int]:
        """The seeds of the grid."""
        if isinstance(self.seeds, int):
            if self.seeds < 1:
                raise ConfigError(f"seeds={self.seeds}: need at least one seed")
            return [self.seed + i for i in range(self.seeds)]
        return [int(s) for s in self.seeds]


def load_study(
    source: str | Path | dict[str, Any], data: str | None = None, seed: int | None = None,
    backbones: Sequence[Any] | None = None, shots: Sequence[Any] | None = None,
) -> StudyConfig:
    """A :class:`StudyConfig` from YAML (or a dict), with optional overrides of the data spec, the first
    seed, the ``backbones`` list and the k-shot episodes (``shots``)."""
    from eoreps.data.splits import check_shots
    from eoreps.evaluation.backbone_list import backbone_methods

    cfg = load_dataclass(StudyConfig, source)
    if data is not None:
        cfg.data.data = data
    if seed is not None:
        cfg.seed = seed
    if backbones is not None:
        cfg.backbones = backbone_methods(backbones, cfg.baseline_arch, taken=[m.name for m in cfg.methods])
    if shots is not None:
        cfg.shots = check_shots(shots)
    if not with_baselines(cfg):
        raise ConfigError(f"{source}: the study has no methods; add methods: [...], backbones: [...] or "
                          "baselines: true")
    return cfg


def quick_study(
    cfg: StudyConfig, keep: Collection[str] = (), changes: list[str] | None = None
) -> StudyConfig:
    """A shrunken copy for smoke runs: at most 2 seeds, small splits at 32 x 32, a few dozen steps per cell.

    Args:
        cfg: the study.
        keep: attribute paths the user set (``"seeds"``, ``"options.train.epochs"``, ``"data.size"`` ...):
            left alone (an explicit epoch count also keeps the step limits).
        changes: when given, receives what was changed (``"seeds 3 -> 0,1"``, see
        :func:`eoreps.quick.shrink`).
    """
    import copy

    from eoreps.quick import shrink

    q = copy.deepcopy(cfg)
    limits = {"train": 400, "val": 150, "test": 200}
    small: dict[str, Any] = {
        "seeds": lambda v: v if len(q.seed_list) <= 2 else q.seed_list[:2],
        "data.limits": lambda d: {s: min(int(d.get(s, n)), n) for s, n in limits.items()},
        "data.size": lambda v: min(v or 32, 32), "data.simeo_n": lambda v: min(v, 1000),
        "options.train.epochs": lambda v: min(v, 3), "options.linear.C": [0.1, 1.0, 10.0]}
    if "options.train.epochs" not in keep:
        small.update({"options.train.min_steps": lambda v: min(v, 15), "options.train.max_steps": 40})
    done = shrink(q, small, keep)
    if changes is not None:
        changes.extend(done)
    q.methods = [quick_pretraining(m) for m in q.methods]
    q.smoke = smoke_detail(q)
    return q


def smoke_detail(cfg: StudyConfig) -> str:
    """How small a ``--quick`` study is, for the smoke-run notes: ``"2 seeds, 400 training samples"``."""
    n = len(cfg.seed_list)
    train = (cfg.data.limits or {}).get("train")
    return f"{n} seed{'s' if n != 1 else ''}" + (f", at most {train} training samples" if train else "")


def _method(d: Any) -> MethodSpec:
    if not isinstance(d, dict):
        raise ConfigError(f"methods: each entry must be a mapping with at least 'name', got {d!r}")
    return load_dataclass(MethodSpec, d)


def with_baselines(cfg: StudyConfig) -> list[MethodSpec]:
    """The study's methods and backbones plus, when ``cfg.baselines``, random init and the supervised
    baselines."""
    methods = list(cfg.methods) + [m for m in cfg.backbones if isinstance(m, MethodSpec)]
    if not cfg.baselines:
        return methods
    names = {m.name for m in methods}
    arch, fusion = cfg.baseline_arch, "late"
    for m in methods:
        if m.kind == "pretrained":
            arch, fusion = _pretrained_arch(m) or (arch, fusion)
            break
    mods = list(cfg.data.modalities)
    extra = [
        MethodSpec("random-init", backbone="random", arch=arch, fusion=fusion if len(mods) > 1 else "early")
    ]
    extra += [MethodSpec(f"supervised-{m}", supervised=True, arch=arch, modalities=[m]) for m in mods]
    if len(mods) > 1:
        extra += [MethodSpec("supervised-early", supervised=True, arch=arch, modalities=mods, fusion="early"),
                  MethodSpec("supervised-late", supervised=True, arch=arch, modalities=mods, fusion="late")]
    return methods + [m for m in extra if m.name not in names]


def _pretrained_arch(m: MethodSpec) -> tuple[str, str] | None:
    """(architecture name, fusion) of a pretrained method, read from its cards."""
    try:
        files = backbone_files(m.backbone)  # type: ignore[arg-type]
        path = next(iter(files.values())).with_suffix(".json")
        card = BackboneCard.from_dict(read_json(path), source=str(path))
        return card.backbone.name, ("late" if len(files) > 1 else "early")
    except (DataError, ConfigError, TypeError, StopIteration):
        return None


# ------------------------------------------------------------------------------------------ cells
@dataclass(frozen=True)
class CellSpec:
    """One (method, protocol, label budget, seed) of the grid: a label ``fraction``, or ``shots`` > 0
    labelled samples per class (``fraction`` is then 0)."""

    method: str
    protocol: str
    fraction: float
    seed: int
    shots: int = 0

    @property
    def key(self) -> str:
        """Deterministic file-name key."""
        budget = f"k{self.shots}" if self.shots else f"f{self.fraction:g}"
        return f"{self.method}__{self.protocol}__{budget}__s{self.seed}"

    @property
    def budget(self) -> float | str:
        """The key of the cell's training subset: the fraction, or ``"k<shots>"``."""
        return f"k{self.shots}" if self.shots else self.fraction

    def record(self) -> dict[str, Any]:
        """The cell's fields (``shots`` only for a k-shot cell, so that existing cell hashes stay valid)."""
        rec = dataclasses.asdict(self)
        if not self.shots:
            rec.pop("shots")
        return rec


def plan_cells(cfg: StudyConfig, methods: Sequence[MethodSpec]) -> list[CellSpec]:
    """Every cell of the grid, seed-major (all methods of one seed before the next seed)."""
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise ConfigError(f"method names must be unique, got {names}")
    cells = []
    budgets = [(float(f), 0) for f in cfg.fractions] + [(0.0, int(k)) for k in cfg.shots]
    if not budgets:
        raise ConfigError("fractions: [] and shots: []: give label fractions, k-shot episodes or both")
    for seed in cfg.seed_list:
        for frac, shots in budgets:
            for m in methods:
                protos = ["supervised"] if m.kind == "supervised" else (m.protocols or cfg.protocols)
                for p in protos:
                    check_protocol(p, m.kind, cfg.data.task)
                    cells.append(CellSpec(m.name, p, frac, int(seed), shots))
    return cells


def validate_grid(cfg: StudyConfig) -> list[CellSpec]:
    """Check the WHOLE grid and return its cells, before anything runs (so that a typo in the last entry is
    not found after hours of pretraining): method names unique, every (method, protocol, task)
    combination, fractions in (0, 1], seeds, architecture names of random / supervised methods, and the
    options of every ``pretrain:`` (its method, backbone name and method kwargs)."""
    from eoreps.models.registry import canonical_backbone_name

    for f in cfg.fractions:
        if not 0 < float(f) <= 1:
            raise ConfigError(f"fractions: {f} is not a label fraction in (0, 1]")
    methods = with_baselines(cfg)
    cells = plan_cells(cfg, methods)  # unique names, protocols per method and task, seeds
    for m in methods:
        if m.kind in ("random", "supervised"):
            canonical_backbone_name(m.arch)
        if m.pretrain is not None:
            check_pretraining(cfg, m)
        elif m.kind == "pretrained":
            _check_backbone_files(m)
    return cells


def _check_backbone_files(m: MethodSpec) -> None:
    """A pretrained method's weights exist (before any cell runs): its local weights file, or its saved
    eoreps backbone(s)."""
    weights = m.weights
    if weights is not None:
        if not Path(weights).is_file():
            raise DataError(f"method '{m.name}': weights file {weights} not found; give the local copy of "
                            f"the weights of {m.backbone}")
        return
    backbone_files(m.backbone)  # type: ignore[arg-type]  # raises a one-line DataError naming the path


def _relevant_options(protocol: str, opts: ProtocolOptions) -> dict[str, Any]:
    """The option groups ``protocol`` reads, as its registration declares them."""
    return protocol_info(protocol).relevant_options(opts)


def _data_record(d: DataConfig) -> dict[str, Any]:
    """``d`` for the cell hash; ``crop`` only when set, so the hashes of existing studies stay valid;
    never ``loader`` (both loaders read the same samples)."""
    rec = dataclasses.asdict(d)
    rec.pop("loader", None)
    if rec.get("crop") is None:
        rec.pop("crop", None)
    return rec


def view_of(d: DataConfig) -> str:
    """What the encoders see of each patch, as the output states it."""
    view = f"centre crop {d.crop} px" if d.crop else "full patch"
    return view + (f", resized to {d.size} px" if d.size else "")


def cell_hash(cfg: StudyConfig, method: MethodSpec, cell: CellSpec) -> str:
    """Hash of everything that determines a cell's result."""
    spec = method.hash_record()  # optional fields at None are left out: old hashes stay
    payload = {
        "method": spec,
        "cell": cell.record(),
        "options": _relevant_options(cell.protocol, cfg.options),
        "data": _data_record(cfg.data),
        "v": 1,
    }
    if cfg.label_noise > 0:  # only then, so the hashes of existing noise-free studies stay valid
        payload["noise"] = [cfg.label_noise, cfg.noise_kind]
    if cfg.options.precision != "fp32":  # likewise: fp32 studies keep their hashes
        payload["precision"] = cfg.options.precision
    return digest(payload)


def finished(path: Path, expected_hash: str) -> bool:
    """True when ``path`` holds a finished cell with ``expected_hash``."""
    if not path.is_file():
        return False
    try:
        rec = read_json(path)
    except DataError:
        return False
    return isinstance(rec, dict) and rec.get("config_hash") == expected_hash and "result" in rec


def run_study(cfg: StudyConfig, out: str | Path, data: EvalData | None = None,
              on_cell: Callable[[CellSpec], None] | None = None) -> Path:
    """Run every unfinished cell of ``cfg`` and write the outputs; returns ``out/report.html``.

    Args:
        cfg: the study.
        out: output folder (``cells/``, ``cache/``, results and report).
        data: the evaluation data, if already loaded (default: :func:`load_eval_data` from ``cfg.data``).
        on_cell: called before each cell is computed (progress reporting, tests).
    """
    out = Path(out)
    validate_grid(cfg)  # the whole grid, before the first (long) pretraining starts
    cfg = pretrain_methods(cfg, out)  # methods with `pretrain:` are pretrained first (reused when finished)
    methods = with_baselines(cfg)
    by_name = {m.name: m for m in methods}
    cells = plan_cells(cfg, methods)
    hashes = {c.key: cell_hash(cfg, by_name[c.method], c) for c in cells}
    todo = [c for c in cells if not finished(out / "cells" / f"{c.key}.json", hashes[c.key])]
    precision = precision_record(cfg.options.precision, asked=requested(cfg.options))
    if requested(cfg.options) == "auto" and resolve_auto("cpu").measurable:  # protocols/finetune.py
        precision["reason"] += ("; each cell times bf16 against fp32 for its model and records the choice: "
                                "trained cells their training step as train_precision, linear and kNN "
                                "cells the frozen encoder's feature pass as feature_precision")
    announce(precision)
    write_json(out / "study.json", {"config": _jsonable(cfg), "cells": [c.key for c in cells],
                                    "precision": precision, **smoke_fields(bool(cfg.smoke), cfg.smoke)})
    if todo:
        if data is None:
            d = cfg.data
            data = load_eval_data(
                d.data,
                d.task,
                d.modalities,
                size=d.size,
                limits=d.limits,
                simeo_n=d.simeo_n,
                crop=d.crop,
                seed=cfg.seed,
                options=d.options,
                loader=d.loader,
            )
        subsets = {s: _subsets(data, cfg, s) for s in sorted({c.seed for c in todo})}
        noisy: dict[int, EvalData] = {}
        inputs: dict[str, dict[str, str]] = {}  # method -> how its inputs were fed (band mapping, units)
        for c in progress(todo, desc="study cells", total=len(todo), unit="cell"):
            if on_cell is not None:
                on_cell(c)
            idx = subsets[c.seed][c.budget]
            cell = Cell(
                _noisy_train(data, cfg, c.seed, noisy),
                by_name[c.method],
                c.protocol,
                c.fraction,
                c.seed,
                idx,
                cfg.options,
                out / "cache",
            )
            t0, c0 = time.perf_counter(), time.process_time()
            result = run_protocol(cell)
            if cell.test_predictions is not None:  # before the JSON: the JSON marks the cell finished
                save_predictions(out / "cells" / f"{c.key}.npz", data.splits["test"].target.numpy(),
                                 cell.test_predictions)
            rec = {
                "key": c.key,
                "config_hash": hashes[c.key],
                **dataclasses.asdict(c),
                "method_kind": by_name[c.method].kind,
                **method_inputs(by_name[c.method], data, inputs),
                "task": data.task.kind,
                "classes": list(data.classes),
                "synthetic": data.synthetic,
                "subset_sha": bytes_digest(np.asarray(idx, dtype=np.int64).tobytes()),
                **(
                    {"label_noise": cfg.label_noise, "noise_kind": cfg.noise_kind}
                    if cfg.label_noise > 0
                    else {}
                ),
                "wall_s": time.perf_counter() - t0,
                "cpu_s": time.process_time() - c0,
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "result": {
                    k: (float(v) if isinstance(v, (int, float, np.floating)) else v)
                    for k, v in result.items()
                },
            }
            write_json(out / "cells" / f"{c.key}.json", rec)
    synthetic = bool(data.synthetic) if data is not None else None
    return write_outputs(cfg, out, [c.key for c in cells], synthetic=synthetic)


def _subsets(data: EvalData, cfg: StudyConfig, seed: int) -> dict[float | str, np.ndarray]:
    """The training subsets of one seed: ``{fraction: indices}`` and ``{"k<shots>": indices}``."""
    from eoreps.data.splits import kshot_indices

    out: dict[float | str, np.ndarray] = {}
    if cfg.fractions:
        out.update(data.fraction_indices(cfg.fractions, seed))
    if cfg.shots:
        episodes = kshot_indices(data.splits["train"].strata, cfg.shots, seed)
        out.update({f"k{k}": idx for k, idx in episodes.items()})
    return out


def _noisy_train(data: EvalData, cfg: StudyConfig, seed: int, cache: dict[int, EvalData]) -> EvalData:
    """``data`` with ``cfg.label_noise`` of its training targets corrupted (seeded by ``seed``;
    cached per seed)."""
    if cfg.label_noise <= 0:
        return data
    if seed not in cache:
        train = data.splits["train"]
        target = corrupt_targets(
            train.target, data.task.kind, len(data.classes), cfg.label_noise, cfg.noise_kind, seed
        )
        cache[seed] = dataclasses.replace(
            data, splits={**data.splits, "train": dataclasses.replace(train, target=target)}
        )
    return cache[seed]


def _jsonable(cfg: StudyConfig) -> dict[str, Any]:
    from eoreps.config import to_dict

    return to_dict(cfg)


def collect(out: str | Path, keys: Sequence[str] | None = None):
    """The cell files of a study as a DataFrame, one row per cell (metrics flattened into columns)."""
    import pandas as pd

    folder = Path(out) / "cells"
    rows = []
    paths = [folder / f"{k}.json" for k in keys] if keys is not None else sorted(folder.glob("*.json"))
    for p in paths:
        if not p.is_file():
            continue
        rec = read_json(p)
        row = {k: v for k, v in rec.items() if k not in ("result", "classes", "config_hash")}
        row.update(rec["result"])
        rows.append(row)
    return pd.DataFrame(rows)


def write_outputs(cfg: StudyConfig, out: str | Path, keys: Sequence[str] | None = None,
                  synthetic: bool | None = None) -> Path:
    """Results (parquet + CSV), markdown tables, the plot and ``report.html`` from the cell files."""
    from eoreps.evaluation.tables import write_study_report

    out = Path(out)
    df = collect(out, keys)
    if df.empty:
        raise DataError(f"{out}/cells: no finished cells to report; run the study first")
    if synthetic is None:
        synthetic = bool(df["synthetic"].any())
    return write_study_report(df, out, title=cfg.name, synthetic=synthetic, data_name=cfg.data.data,
                              smoke=cfg.smoke or None)
