"""The options of ``eoreps hyper evaluate``, ``hyper sample`` and ``hyper demo``, from which the commands'
options, ``--help`` and YAML keys are generated (:mod:`eoreps.cli_config`). Torch-free: building the CLI
imports this module.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from eoreps.cli_config import opt
from eoreps.errors import ConfigError
from eoreps.quick import shrink

# --quick for 'hyper evaluate' / 'hyper sample': a smoke run that checks the pipeline in seconds; its tables
# are marked as such (not a measurement). Options the user gave win.
EVALUATE_QUICK = {"max_rows": 500}  # training checkpoints per probe
SAMPLE_QUICK = {"n": 4, "top_k": 8, "epochs": [0, 1]}  # sampled models, anchors, fine-tuning epochs


@dataclass
class ProbeOptions:
    """``hyper evaluate``: probes of model properties (``zoo``, ``rep``, ``out``, ``seed``: the command's own
    options of the same names)."""

    zoo: Path
    rep: Path
    early_epoch: int | None = opt(None, help="Checkpoint used to predict final accuracy (default 1).")
    max_rows: int = opt(6000, help="Cap on training checkpoints per probe.")
    plot: bool = opt(False, help="Also draw model_map.png: a 2-D map (UMAP if installed, else t-SNE) of the "
                                 "models' embeddings coloured by test accuracy, epoch and hyperparameters.")
    out: Path | None = None
    seed: int = 0
    smoke: bool = False  # a --quick run: tables say it is not a measurement

    def apply_quick(self, keep: Collection[str] = ()) -> list[str]:
        """``--quick``: at most 500 training checkpoints per probe unless ``max_rows`` is in ``keep``."""
        self.smoke = True
        return shrink(self, EVALUATE_QUICK, keep)


@dataclass
class SampleConfig:
    """Options of ``eoreps hyper sample`` (:func:`eoreps.hyper.sample.run_sample`)."""

    zoo: Path
    rep: Path
    n: int = opt(50, help="Number of models to sample.")
    top_k: int = opt(30, help="Best training models the density is fitted on.")
    activation: str | None = opt(
        None, help="Activation of the sampled models (default: that of the best model)."
    )
    epochs: list[int] = opt(factory=lambda: [0, 1, 5], help="Fine-tuning epochs to report.")
    transfer: str | None = opt(
        None, help="Also fine-tune on this dataset ('digits', or an MNIST-style PATH), resized.")
    bandwidth_scale: float = opt(
        1.0, help="KDE bandwidth as a multiple of Scott's; < 1 samples closer to the best models.")
    out: Path | None = None
    seed: int = 0
    smoke: bool = False  # a --quick run: tables and summary.json say it is not a measurement

    def __post_init__(self) -> None:
        if not 0 < self.bandwidth_scale <= 10:
            raise ConfigError(f"bandwidth_scale={self.bandwidth_scale} must lie in (0, 10]; "
                              "1 = Scott's bandwidth")

    def apply_quick(self, keep: Collection[str] = ()) -> list[str]:
        """``--quick``: 4 sampled models, 8 anchors, epochs 0,1, except the options in ``keep``."""
        self.smoke = True
        return shrink(self, SAMPLE_QUICK, keep)


@dataclass
class DemoOptions:
    """``hyper demo``: digits zoo -> representation -> property table (``out``, ``seed``: shared options)."""

    epochs: int | None = opt(None, help="Representation training epochs.")
    out: Path = Path("hyper_demo")
    seed: int = 0
    quick: bool = False  # run_demo's own smoke sizes (zoo, model, epochs)
