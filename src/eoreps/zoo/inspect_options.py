"""The options of ``eoreps zoo inspect`` and ``zoo prune``, from which the commands' options, ``--help`` and
YAML keys are generated (:mod:`eoreps.cli_config`). Torch-free: building the CLI imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eoreps.cli_config import opt
from eoreps.errors import ConfigError


@dataclass
class InspectOptions:
    """``zoo inspect`` (``out``: where inspect.png goes; the command defaults it to the zoo folder)."""

    verify: bool = opt(True, help="Verify the shard checksums (--no-verify skips it).")
    out: Path | None = None


@dataclass
class PruneOptions:
    """``zoo prune``: magnitude-pruned twins of every model at these sparsities and epochs."""

    sparsity: list[float] = opt(factory=lambda: [round(0.1 * i, 1) for i in range(10)],
                                help="Comma-separated sparsity ratios.")
    epochs: list[int] | None = opt(None, help="Comma-separated epochs (default: last).", none="")
    out: Path | None = None

    def __post_init__(self) -> None:
        bad = [s for s in self.sparsity if not 0 <= s <= 1]
        if bad:
            raise ConfigError(f"sparsity={bad[0]} must be in [0, 1] (the share of weights set to zero)")
