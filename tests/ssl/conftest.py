"""Fixtures of the pretraining tests: a small SimEO folder (synthetic), generated once and cached."""

from __future__ import annotations

from pathlib import Path

import pytest

SIMEO_N, SIMEO_SCENES, SIMEO_SCENE_SIZE = 320, 3, 96


@pytest.fixture(scope="session")
def simeo_small() -> Path:
    """A SimEO folder with 320 patches (~220 train) and 3 scenes of 96 px, cached across runs."""
    from eoreps.data.simeo.io import cached_simeo

    return cached_simeo(n=SIMEO_N, seed=0, scenes=SIMEO_SCENES, scene_size=SIMEO_SCENE_SIZE)
