"""The options of ``eoreps data generate`` and ``data inspect``, from which the commands' options, ``--help``
and YAML keys are generated (:mod:`eoreps.cli_config`). Torch-free: building the CLI imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eoreps.cli_config import opt
from eoreps.errors import ConfigError


@dataclass
class GenerateOptions:
    """``data generate``: SimEO patches (and scenes, power plants) into ``out`` (``out``, ``seed``:
    shared)."""

    n: int = opt(2000, help="Number of patches.")
    scenes: int = opt(0, help="Number of large scenes (for Tile2Vec).")
    power_plants: int = opt(0, help="Number of power-plant patches (multi-task set).")
    patch_size: int = opt(32, help="Patch side in pixels.")
    out: Path = Path("simeo_data")
    seed: int = 0


@dataclass
class InspectOptions:
    """``data inspect``: what is read for the report (the dataset options come from the shared ones)."""

    max_samples: int = opt(0, help="Samples read for statistics (0 = all).")
    include_snow_cloud: bool = opt(
        False,
        help="reBEN: also use the patches flagged for snow, cloud or shadow.",
        flag="--include-snow-cloud",
    )

    def __post_init__(self) -> None:
        if self.max_samples < 0:
            raise ConfigError(f"max_samples={self.max_samples}: must be >= 0 (0 = all samples)")

    def open_kwargs(self) -> dict[str, bool]:
        """The dataset-opening arguments these options add."""
        return {"include_snow_cloud": True} if self.include_snow_cloud else {}
