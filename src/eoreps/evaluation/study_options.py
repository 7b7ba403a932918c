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
from eoreps.data.pack_cache import LOADER_HELP


@dataclass
class StudyOptions:
    """``study label-efficiency``: the study YAML (``config``) with the overrides of the command line."""

    seed: int | None = opt(None, help="First seed (default: the YAML's).", click={"min": 0})
    backbones: str = opt("", help="Comma-separated backbones compared with the YAML's protocols, replacing "
                         "its backbones: list (random, random:ARCH, a saved backbone's path, "
                         "timm:NAME@WEIGHTS_FILE, torchgeo:ENUM.MEMBER@WEIGHTS_FILE).")
    shots: str = opt("", help="Comma-separated k-shot episodes (k labelled samples per class, e.g. 1,5,10), "
                     "replacing the YAML's shots:.")
    loader: str = opt("", help="stream or memory, replacing the YAML's data: loader: (default stream: "
                      "read a pack; other sources are packed once into the cache).")
    config: Path | None = None
    out: Path = Path("study_out")
    data: str = ""
    quick: bool = False

    def load(self, changes: list[str] | None = None) -> Any:
        """The :class:`~eoreps.evaluation.study.StudyConfig`: the YAML, ``data`` and ``seed`` overridden,
        shrunk to a smoke run with ``quick`` (``changes`` receives what that changed)."""
        from eoreps.evaluation.study import load_study, quick_study

        if self.config is None:
            from eoreps.errors import ConfigError

            raise ConfigError("config=None: give the study YAML")
        from eoreps.evaluation.backbone_list import split_list

        cfg = load_study(self.config, data=self.data or None, seed=self.seed,
                         backbones=split_list(self.backbones) or None, shots=split_list(self.shots) or None)
        if self.loader:
            from eoreps.data.pack_cache import check_loader

            cfg.data.loader = check_loader(self.loader)
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
    ``data``, ``seed``, ``quick``: shared options."""

    full: bool = opt(False, help="Every protocol and label fraction, 5 seeds (long).", flag="--full")
    loader: str = opt("stream", help=LOADER_HELP)
    out: Path = Path("demo_out")
    data: str = "simeo"
    seed: int = 0
    quick: bool = False
