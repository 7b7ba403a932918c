"""Experiments that regenerate the published pillar-1 tables on SimEO (synthetic), via one runner."""

from eoreps.tasks.experiments.fusion import FusionSettings, run_fusion
from eoreps.tasks.experiments.multitask import MultitaskSettings, run_multitask
from eoreps.tasks.experiments.uncertainty import UncertaintySettings, run_uncertainty

__all__ = ["FusionSettings", "MultitaskSettings", "UncertaintySettings", "run_fusion", "run_multitask",
           "run_uncertainty"]
