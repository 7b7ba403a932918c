"""The options of ``eoreps experiment fusion|multitask|uncertainty|weak-supervision``, from which the
commands' options, ``--help`` and YAML keys are generated (:mod:`eoreps.cli_config`). Torch-free: building the
CLI imports this module. Each experiment's own settings class (``FusionSettings`` ...) holds its grid; its
``quick()`` is the smoke-run version.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eoreps.cli_config import opt


@dataclass
class ExperimentOptions:
    """What every experiment command sets (``out``, ``quick``: shared options)."""

    seeds: list[int] | None = opt(None, help="Comma-separated seeds (default 0,1,2; --quick: 0).", none="")
    out: Path = Path("runs/experiment")
    quick: bool = False

    def settings(self, cls: Any) -> Any:
        """The experiment's settings: ``cls.quick()`` for a smoke run, else ``cls()``; ``seeds`` replaced."""
        s = cls.quick() if self.quick else cls()
        return dataclasses.replace(s, seeds=tuple(self.seeds)) if self.seeds else s
