"""``EvaluateConfig``: the options of ``eoreps evaluate`` (one backbone, one or more protocols and label
fractions), from which the command's options, ``--help`` and YAML keys are generated
(:mod:`eoreps.cli_config`). :meth:`EvaluateConfig.study` turns it into the one-method
:class:`~eoreps.evaluation.study.StudyConfig` that :func:`~eoreps.evaluation.study.run_study` runs.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eoreps.cli_config import opt, parse_list
from eoreps.data.pack_cache import LOADER_HELP, check_loader
from eoreps.precision import keep_request, resolve_config
from eoreps.vocabulary import normalize_task

EVALUATE_TASKS = ("classify", "multilabel", "segment")
# an option of `eoreps evaluate` -> the StudyConfig path --quick must leave alone when the user gave it
_QUICK_PATHS = {"seeds": "seeds", "epochs": "options.train.epochs", "size": "data.size"}


def _parse_protocols(value: str) -> list[str]:
    from eoreps.evaluation.protocols import PROTOCOLS

    return parse_list(value, "protocol", [p for p in PROTOCOLS if p != "supervised"])


@dataclass
class EvaluateConfig:
    """Everything ``eoreps evaluate`` needs (YAML keys = these names; ``data``/``seed`` are
    the shared options).

    Attributes:
        backbone: a backbone file/folder saved by eoreps, ``random`` (a random initialisation of ``arch``),
            or an external spec with ``weights`` (``torchgeo:<Enum>.<MEMBER>``, ``timm:<model>``).
        weights, key_map, band_fill, data_units: external weights and how the data reaches them
            (:class:`~eoreps.evaluation.methods.MethodSpec`).
        protocol: protocols to run (``linear``, ``knn``, ``finetune``, ``adapter``).
        task, fractions, seeds, modalities, size: the data and the label-fraction grid.
        arch, fusion: architecture and fusion of random / supervised encoders; baselines: add them.
        k, temperature: kNN; adapter: adapter kind; epochs: epochs of trained protocols.
        label_noise, noise_kind: corrupt the training labels (:mod:`eoreps.tasks.noise`).
        loader: ``stream`` (read a pack, made once in the cache for other sources) or ``memory``.
        precision: ``auto`` (bf16 on CPUs with AMX or AVX512-BF16, else fp32; stored resolved; on such a CPU
            each cell times its model in both and keeps bf16 only when >= 1.05x faster: a trained cell its
            training step, a linear / kNN cell its frozen encoder's feature pass,
            :func:`eoreps.evaluation.protocols.base.cell_precision`), ``fp32`` or ``bf16``: CPU
            autocast of feature extraction, fine-tuning and prediction.
        quick, quick_keep: the smoke-run shrinkage (:meth:`apply_quick`) and the options it leaves alone.
    """

    backbone: str = opt("random", help="Backbone file/folder saved by eoreps (one per modality allowed), or "
                                       "'random' for a random initialisation.")
    weights: str | None = opt(None, help="Local weights file of an external --backbone spec: "
                                         "torchgeo:<WeightsEnum>.<MEMBER>, timm:<model> or an eoreps "
                                         "backbone name (see docs/models.md).")
    key_map: str | None = opt(None, help="Rewrite the weights' key prefixes, e.g. 'backbone.=' "
                                         "(comma-separated OLD=NEW, or a YAML file of them).")
    band_fill: str | None = opt(None, help="Bands the weights expect but the data lacks: mean (0 after "
                                           "normalisation, the default) or nearest (nearest-wavelength "
                                           "copy).")
    data_units: str | None = opt(None, help="The data's units if the guess from its statistics is wrong: "
                                            "dn, byte, reflectance, db or linear.")
    protocol: list[str] = opt(factory=lambda: ["linear"], parse=_parse_protocols,
                              help="linear, knn, finetune, adapter (comma-separated for several).")
    task: str = opt("classify", help="classify, multilabel or segment.")
    fractions: list[float] = opt(factory=lambda: [0.01, 0.1, 0.2, 0.5, 1.0],
                                 help="Label fractions of the training split.")
    seeds: int = opt(3, help="Number of seeds (subsets, initialisation, training).")
    modalities: list[str] = opt(factory=lambda: ["s2", "s1"], help="Modalities to load, e.g. s2,s1.")
    arch: str = opt("cnn-small", help="Architecture of random / supervised encoders.")
    fusion: str = opt("late", help="early or late fusion for random encoders.")
    baselines: bool = opt(False, help="Add random init and supervised from scratch (each modality, early and "
                                      "late fusion) to the table.")
    size: int | None = opt(None, help="Resize images to SIZE x SIZE (0 = native).", none=0)
    crop: int | None = opt(
        None, help="Evaluate on the centred CROP x CROP px of each patch (0 = the full patch).", none=0
    )
    k: int = opt(20, help="kNN neighbours.")
    temperature: float = opt(0.07, help="kNN vote temperature.")
    adapter: str = opt("auto", help="auto, spectral or lora.")
    epochs: int = opt(30, help="Epochs of trained protocols.")
    label_noise: float = opt(0.0, help="Corrupt this fraction of the training labels (val/test stay clean).")
    noise_kind: str = opt("uniform", help="uniform | class (label noise).")
    data: str = "simeo"
    seed: int = 0
    data_options: dict[str, Any] = field(default_factory=dict)
    loader: str = opt("stream", help=LOADER_HELP)
    precision: str = opt("auto", help="auto (bf16 on CPUs with AMX or AVX512-BF16, else fp32; there each "
                                      "cell keeps bf16 only where its timed training step or feature pass "
                                      "is >= 1.05x faster), fp32 or bf16: CPU autocast of the protocols' "
                                      "forward passes.")
    quick: bool = False
    quick_keep: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.task = normalize_task(self.task, EVALUATE_TASKS)
        check_loader(self.loader)
        self.precision = resolve_config(self, ("auto", "fp32", "bf16"))  # auto: for this CPU

    def apply_quick(self, keep: Collection[str] = ()) -> list[str]:
        """``--quick``: shrink the study to seconds (:func:`~eoreps.evaluation.study.quick_study`) except the
        options in ``keep`` (those the user gave); returns what changes."""
        self.quick, self.quick_keep = True, sorted(keep)
        changes: list[str] = []
        self._study(changes)
        return changes

    def study(self) -> Any:
        """The :class:`~eoreps.evaluation.study.StudyConfig` of this evaluation (shrunk when ``quick``)."""
        return self._study([])

    def _study(self, changes: list[str]) -> Any:
        from eoreps.evaluation.encoders import MethodSpec
        from eoreps.evaluation.study import DataConfig, StudyConfig, quick_study

        mods = list(self.modalities)
        if self.backbone == "random":
            method = MethodSpec("random-init", backbone="random", arch=self.arch,
                                fusion=self.fusion if len(mods) > 1 else "early", modalities=mods)
        elif self.weights is not None:
            from eoreps.evaluation.backbone_list import default_name

            method = MethodSpec(default_name(self.backbone), backbone=self.backbone, weights=self.weights,
                                key_map=self.key_map, band_fill=self.band_fill, data_units=self.data_units,
                                modalities=mods)
        else:
            path = Path(self.backbone)
            name = path.stem if path.suffix else path.name
            method = MethodSpec(name.replace("__", "_") or "backbone", backbone=self.backbone,
                                band_fill=self.band_fill, data_units=self.data_units)
        cfg = StudyConfig(
            name=f"Evaluation of {method.name}",
            data=DataConfig(data=self.data, task=self.task, modalities=mods, size=self.size,
                            crop=self.crop, options=dict(self.data_options), loader=self.loader),
            methods=[method], protocols=list(self.protocol), fractions=list(self.fractions), seeds=self.seeds,
            seed=self.seed, baselines=self.baselines, baseline_arch=self.arch, label_noise=self.label_noise,
            noise_kind=self.noise_kind)
        cfg.options.knn.k, cfg.options.knn.temperature = self.k, self.temperature
        cfg.options.adapter.kind = self.adapter
        cfg.options.train.epochs = self.epochs
        keep_request(self, cfg.options)  # the precision, and whether it was auto (the record's reason)
        if self.quick:  # options the user gave win
            keep = {path for name, path in _QUICK_PATHS.items() if name in self.quick_keep}
            cfg = quick_study(cfg, keep, changes)
        return cfg
