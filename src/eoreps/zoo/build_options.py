"""``BuildOptions``: the options of ``eoreps zoo build``, from which the command's options, ``--help``
and YAML keys are generated (:mod:`eoreps.cli_config`). They are the flat, user-facing view of
:class:`eoreps.zoo.build.BuildConfig`: :meth:`BuildOptions.to_config` applies the preset (options given win),
reads the grid file and nests the training options.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eoreps.cli_config import opt, parse_kwargs
from eoreps.errors import ConfigError
from eoreps.vocabulary import normalize_precision

ZOO_PRECISIONS = ("auto", "fp32", "bf16")  # auto: engine-dependent (native: measured, torch: bf16)
QUICK_MODELS, QUICK_EPOCHS = 16, 2


def parse_backbone_kwargs(value: str, what: str) -> dict[str, Any]:
    """:func:`eoreps.cli_config.parse_kwargs`, plus list values (``widths=[8,16,32],depths=[1,1,1]``, read
    as one YAML flow mapping) for the narrow variants of the ``cnn-*`` backbones."""
    if "[" not in value:
        return parse_kwargs(value, what)
    import re

    import yaml

    try:
        out = yaml.safe_load("{" + re.sub(r"\s*=\s*", ": ", value) + "}")
    except yaml.YAMLError:
        out = None
    if not isinstance(out, dict):
        raise ConfigError(f"{what}: cannot parse '{value}'; write e.g. 'widths=[8,16,32],depths=[1,1,1]'")
    return {str(k): v for k, v in out.items()}


@dataclass
class BuildOptions:
    """The ``zoo build`` options (YAML keys = these names; ``out`` and ``seed`` are shared options).

    ``quick``, ``quick_keep``: the smoke-run shrinkage (:meth:`apply_quick`) and the options it leaves alone.
    """

    dataset: str | None = opt(
        None, help="'digits', 'simeo' or a PATH to an MNIST-style folder (idx/csv/npz)."
    )
    arch: str | None = opt(
        None, help="cnn_s | cnn_s_rgb | cnn_digits | mlp | cnn_ms, or backbone:NAME (a zoo of that backbone)."
    )
    backbone: str | None = opt(
        None, help="A registered backbone (cnn-tiny, cnn-small, timm:resnet18, ...) + linear head: a "
        "backbone zoo (same as --arch backbone:NAME; the grid takes backbone factors, see docs/zoo.md)."
    )
    backbone_kwargs: dict[str, Any] = opt(
        factory=dict,
        parse=lambda v: parse_backbone_kwargs(v, "--backbone-kwargs"),
        help="Backbone options KEY=VALUE,... (e.g. widths=[8,16,32]; ViT default: img_size=the images').",
    )
    from_pretraining: Path | None = opt(
        None, help="YAML of SSL pretraining runs (methods, seeds, data fractions): a zoo of pretrained EO "
        "backbones scored by linear probes at 1 %/10 % labels (docs/zoo.md).", click={"dir_okay": False}
    )
    grid: Path | None = opt(None, help="Grid YAML of generating factors.", click={"dir_okay": False})
    epochs: int | None = opt(None, help="Training epochs (checkpoints 0..E).")
    preset: str | None = opt(
        None, help="digits-small | mnist-cnn-s (dataset, arch, grid, epochs; options given win)."
    )
    batch_size: int = opt(10, help="Images per step per model.")
    precision: str = opt("auto", help="auto (native engine: its bf16 kernel where the CPU has avx512_bf16 "
                                      "and it measures faster, else fp32; torch: bf16), fp32 or bf16.")
    engine: str = opt(
        "auto", help="auto (native when a C++ compiler is found), native (compiled kernel) or torch."
    )
    data_order: str = opt("per_model", help="per_model (each model its own order) or shared (faster).")
    chunk_size: int = opt(256, help="Models trained together per chunk.")
    backend: str = opt("local", help="local or ray.")
    ray_address: str | None = opt(
        None, help="Ray cluster address ('auto' on a cluster node); default: a local Ray."
    )
    ray_cpus: int | None = opt(
        None, help="CPUs of the local Ray (default: torch threads); e.g. the machine's cores."
    )
    ray_threads: int = opt(1, help="Torch threads (and Ray CPUs) per Ray task.")
    seed: int = 0
    quick: bool = False
    quick_keep: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.precision = normalize_precision(self.precision, ZOO_PRECISIONS)

    def apply_quick(self, keep: Collection[str] = ()) -> list[str]:
        """``--quick``: at most 2 epochs and 16 randomly drawn models of the grid, except the options in
        ``keep`` (those the user gave: ``epochs``, ``grid``); returns what changes."""
        self.quick, self.quick_keep = True, sorted(keep)
        if self.from_pretraining is not None:  # eoreps.zoo.pretrained.load_pretrain_zoo_spec shrinks the runs
            return ["pretraining runs: 1 epoch, <= 128 samples; probes: small splits, 1 seed"]
        changes: list[str] = []
        self.to_config(Path("."), changes)
        return changes

    def to_config(self, out: Path, changes: list[str] | None = None) -> Any:
        """The :class:`eoreps.zoo.build.BuildConfig` (``changes`` receives what ``quick`` changed)."""
        from eoreps.zoo.backbones import BACKBONE_PREFIX, BackboneGrid, backbone_name_of, load_backbone_grid
        from eoreps.zoo.build import BuildConfig
        from eoreps.zoo.grid import Grid, load_grid
        from eoreps.zoo.population import TrainOptions
        from eoreps.zoo.presets import get_preset

        p = get_preset(self.preset) if self.preset else None
        dataset = self.dataset or (p.dataset if p else None) or ("digits" if not p else None)
        if dataset is None:
            raise ConfigError(
                f"preset={self.preset} needs dataset=PATH (an MNIST folder with idx or csv files)"
            )
        if dataset not in ("digits", "simeo"):
            dataset = str(Path(dataset).resolve())
        arch = self.arch or (p.arch if p else "cnn_digits")
        if self.backbone:
            if self.arch and self.arch != BACKBONE_PREFIX + self.backbone:
                raise ConfigError(f"backbone={self.backbone} and arch={self.arch}: give one of them")
            arch = BACKBONE_PREFIX + self.backbone
        load = load_backbone_grid if backbone_name_of(arch) else load_grid
        g: Any = load(self.grid) if self.grid else (BackboneGrid() if backbone_name_of(arch) else
                                                    (p.grid if p else Grid()))
        epochs = self.epochs if self.epochs is not None else (p.epochs if p else 10)
        done: list[str] = []
        if self.quick:  # options the user gave (epochs, grid) win
            if "epochs" not in self.quick_keep and epochs > QUICK_EPOCHS:
                done.append(f"epochs {epochs} -> {QUICK_EPOCHS}")
                epochs = QUICK_EPOCHS
            if "grid" not in self.quick_keep:
                done += [f"models {g.size} -> {QUICK_MODELS} (random)"] if g.size > QUICK_MODELS else []
                g = load(
                    {**dict(g.__dict__), "sampling": "random", "n_models": min(QUICK_MODELS, g.size)}
                )
        if changes is not None:
            changes.extend(done)
        options = TrainOptions(
            batch_size=self.batch_size,
            precision=self.precision,
            data_order=self.data_order,
            engine=self.engine,
        )
        return BuildConfig(
            out=out,
            dataset=dataset,
            arch=arch,
            grid=g,
            epochs=epochs,
            seed=self.seed,
            options=options,
            chunk_size=self.chunk_size,
            backend=self.backend,
            ray_address=self.ray_address,
            ray_cpus=self.ray_cpus,
            ray_threads=self.ray_threads,
            backbone_kwargs=dict(self.backbone_kwargs),
        )


def run_build(options: BuildOptions, out: Path) -> dict[str, Any]:
    """What ``eoreps zoo build`` runs: a zoo from pretraining runs (``from_pretraining``), else
    :func:`eoreps.zoo.build.build_zoo` of :meth:`BuildOptions.to_config`; returns its summary."""
    if options.from_pretraining is not None:
        from eoreps.zoo.pretrained import build_pretrained_zoo, load_pretrain_zoo_spec

        spec = load_pretrain_zoo_spec(options.from_pretraining, quick=options.quick)
        return build_pretrained_zoo(spec, out, seed=options.seed)
    from eoreps.zoo.build import build_zoo

    return build_zoo(options.to_config(out))
