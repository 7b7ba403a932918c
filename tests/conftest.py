"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("EOREPS_NO_PROGRESS", "1")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; skips the test when absent (a user's fresh clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (CI has it)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _torch_threads():
    """Keep tests on the 2 cores this project is sized for."""
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield
