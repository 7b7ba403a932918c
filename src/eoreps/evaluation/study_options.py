"""The options of ``eoreps study label-efficiency`` and ``eoreps demo``, from which the commands' options,
``--help`` and YAML keys are generated (:mod:`eoreps.cli_config`). Torch-free: building the CLI imports this
module; the study itself is read from its YAML (:func:`eoreps.evaluation.study.load_study`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eoreps.cli_config import opt


@dataclass
class StudyOptions:
    """``study label-efficiency``: the study YAML (``config``) with the overrides of the command line."""

    seed: int | None = opt(None, help="First seed (default: the YAML's).", click={"min": 0})
    config: Path | None = None
    out: Path = Path("study_out")
    data: str = ""
    quick: bool = False

    def load(self, changes: list[str] | None = None) -> Any:
        """The :class:`~eoreps.evaluation.study.StudyConfig`: the YAML, ``data`` and ``seed`` overridden,
        shrunk
        to a smoke run with ``quick`` (``changes`` receives what that changed)."""
        from eoreps.evaluation.study import load_study, quick_study

        if self.config is None:
            from eoreps.errors import ConfigError

            raise ConfigError("config=None: give the study YAML")
        cfg = load_study(self.config, data=self.data or None, seed=self.seed)
        return quick_study(cfg, changes=changes) if self.quick else cfg

    def apply_quick(self, keep: Collection[str] = ()) -> list[str]:
        """``--quick``: shrink the YAML's grid (:func:`~eoreps.evaluation.study.quick_study`); returns what it
        changes. The YAML's own values are the study, so ``keep`` (command-line options) changes nothing."""
        self.quick = True
        changes: list[str] = []
        self.load(changes)
        return changes


@dataclass
class HeadlineOptions:
    """``eoreps demo``: the headline study (:func:`eoreps.evaluation.headline.run_headline`); ``out``,
    ``data``,
    ``seed``, ``quick``: shared options."""

    full: bool = opt(False, help="Every protocol and label fraction, 5 seeds (long).", flag="--full")
    out: Path = Path("demo_out")
    data: str = "simeo"
    seed: int = 0
    quick: bool = False
