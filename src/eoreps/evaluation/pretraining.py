"""Pretraining inside a study: a method spec with ``pretrain:`` is pretrained first, then evaluated.

In a study YAML::

    methods:
      - {name: rotation, pretrain: {method: rotation, epochs: 20, max_samples: 2048}}
      - {name: dual-simclr, pretrain: {method: multimodal}}

``pretrain`` holds :class:`eoreps.ssl.pretrain.PretrainConfig` options (``method`` is required; ``out``
and ``resume`` are set by the study). Unless given there, the run pretrains on the **training split of
the study's own data** (for ``data: simeo`` the same cached SimEO folder the evaluation reads), on the
study's image modalities (categorical and vector ones left out), with ``backbone: baseline_arch``,
``seed: seed`` and no online kNN monitor (the study evaluates the encoder anyway).

:func:`pretrain_methods` runs every such pretraining into ``<study out>/pretrain/<method name>`` and
returns the study with ``backbone`` pointing there, so the rest of the study treats these methods like
any pretrained backbone. Finished runs are reused when their options are unchanged
(``study_pretrain.json`` records them); an interrupted run resumes from its last checkpoint; changed
options start the run afresh. Cell hashes include the ``pretrain`` options, so changed pretraining also
recomputes the affected cells.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eoreps.data.loader_workers import AUTO, parse_workers
from eoreps.digest import digest
from eoreps.errors import ConfigError
from eoreps.evaluation.methods import SET_BY_STUDY as _SET_BY_STUDY
from eoreps.evaluation.methods import MethodSpec, check_pretrain
from eoreps.vocabulary import lightning_precision

if TYPE_CHECKING:  # annotations only: study imports this module, never the other way round at run time
    from eoreps.evaluation.study import StudyConfig
    from eoreps.ssl.pretrain import PretrainConfig

RECORD = "study_pretrain.json"
__all__ = ["RECORD", "check_pretrain", "check_pretraining", "pretrain_config", "pretrain_methods",
           "quick_pretraining", "run_method_pretraining"]


def _study_data(cfg: StudyConfig) -> str:
    """The data path the evaluation reads (``simeo``: its cached folder)."""
    if cfg.data.data == "simeo":
        from eoreps.data.simeo.io import cached_simeo

        return str(cached_simeo(cfg.data.simeo_n, seed=0))
    return str(cfg.data.data)


def _image_modalities(modalities: list[str]) -> list[str]:
    from eoreps.data.modalities import MODALITIES

    return [m for m in modalities if m not in MODALITIES or (MODALITIES[m].kind == "image"
                                                              and not MODALITIES[m].categorical)]


def pretrain_config(cfg: StudyConfig, method: MethodSpec, out: str | Path) -> PretrainConfig:
    """The :class:`PretrainConfig` of ``method`` in study ``cfg`` (output ``<out>/pretrain/<name>``)."""
    return _pretrain_config(cfg, method, out, _study_data(cfg))


def check_pretraining(cfg: StudyConfig, method: MethodSpec) -> None:
    """Validate everything about ``method``'s pretraining that can be checked before it runs (options,
    method, backbone name, method kwargs) without touching the data: a one-line :class:`ConfigError`."""
    from eoreps.models.registry import canonical_backbone_name

    pc = _pretrain_config(cfg, method, ".", str(cfg.data.data)).resolved()
    if not pc.backbone.startswith("timm:"):
        canonical_backbone_name(pc.backbone)


def _pretrain_config(cfg: StudyConfig, method: MethodSpec, out: str | Path, data: str) -> PretrainConfig:
    from eoreps.config import load_dataclass
    from eoreps.ssl.pretrain import PretrainConfig

    check_pretrain(method)
    assert method.pretrain is not None
    defaults: dict[str, Any] = {
        "data": data,
        "modalities": _image_modalities(list(cfg.data.modalities)),
        "backbone": cfg.baseline_arch,
        "seed": cfg.seed,
        "knn": False,
        "data_options": dict(cfg.data.options),
    }  # same loader options (splits) as the study
    if not defaults["modalities"] and "modalities" not in method.pretrain:
        raise ConfigError(f"method '{method.name}': the study loads no image modality to pretrain on "
                          f"({', '.join(cfg.data.modalities)}); give pretrain: {{modalities: [...]}}")
    options = {
        **defaults,
        **method.pretrain,
        "out": str(Path(out) / "pretrain" / method.name),
        "resume": False,
    }
    return load_dataclass(PretrainConfig, options)


def _digest(pc: PretrainConfig) -> str:
    d = {k: v for k, v in dataclasses.asdict(pc).items() if k not in _SET_BY_STUDY}
    # fields added after runs were recorded stay out while unset, so those runs keep their digest
    for key, unset in (("data_options", {}), ("crop", None), ("loader", "stream")):
        if d.get(key, unset) == unset:
            d.pop(key, None)
    # "auto" is the default, 0 before "auto" existed: recorded runs keep digests (any spelling: a changed
    # digest would discard a finished run)
    workers = parse_workers(d.get("num_workers", 0))
    d["num_workers"] = 0 if workers == AUTO else workers
    from eoreps.ssl.methods.tile2vec import Tile2VecOptions  # its fields were PretrainConfig's: same digests

    d.update({k: d["method_kwargs"].pop(k, v) for k, v in dataclasses.asdict(Tile2VecOptions()).items()})
    d["precision"] = lightning_precision(d["precision"])  # digests were recorded with Lightning's spelling
    return digest(d)


def run_method_pretraining(pc: PretrainConfig) -> Path:
    """Run (or reuse, or resume) one study pretraining; returns its output folder."""
    from eoreps.io import read_json, write_json
    from eoreps.ssl.pretrain import run_pretrain

    run = Path(pc.out)
    digest = _digest(pc)
    record = run / RECORD
    same = record.is_file() and read_json(record).get("digest") == digest
    if same and (run / "encoders.json").is_file() and (run / "pretrain.json").is_file():
        return run
    if not same and run.exists():  # options changed: the old run's checkpoints and exports are stale
        shutil.rmtree(run)
    run.mkdir(parents=True, exist_ok=True)
    write_json(record, {"digest": digest, "config": dataclasses.asdict(pc)})
    resume = (run / "checkpoints" / "last.ckpt").is_file()
    run_pretrain(dataclasses.replace(pc, resume=resume))
    return run


def pretrain_methods(cfg: StudyConfig, out: str | Path) -> StudyConfig:
    """A copy of ``cfg`` whose ``pretrain`` methods point at their (now finished) pretraining runs."""
    if not any(m.pretrain is not None for m in cfg.methods):
        return cfg
    from eoreps.progress import progress

    methods = []
    for m in progress(cfg.methods, desc="study pretraining", total=len(cfg.methods), unit="method"):
        if m.pretrain is not None:
            m = dataclasses.replace(m, backbone=str(run_method_pretraining(pretrain_config(cfg, m, out))))
        methods.append(m)
    return dataclasses.replace(cfg, methods=methods)


def quick_pretraining(method: MethodSpec) -> MethodSpec:
    """``method`` with its pretraining shrunk to a smoke run (``quick: true``)."""
    if method.pretrain is None:
        return method
    return dataclasses.replace(method, pretrain={**method.pretrain, "quick": True})
