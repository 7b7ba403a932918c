"""Fixtures for the zoo tests: a small real data set (sklearn digits) and tiny member lists."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from eoreps.zoo.datasets import ZooData, load_digits


@pytest.fixture(scope="session")
def digits() -> ZooData:
    """sklearn digits (real), full size: 1,438 train / 90 val / 269 test images of 1 x 8 x 8."""
    return load_digits(seed=0)


@pytest.fixture(scope="session")
def small_digits(digits: ZooData) -> ZooData:
    """The first 200 training images only (fast training in tests)."""
    return ZooData("digits200", digits.x_train[:200], digits.y_train[:200], digits.x_val, digits.y_val,
                   digits.x_test, digits.y_test, digits.num_classes, False, "sklearn digits (first 200)")


@pytest.fixture
def local_ray() -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """``with local_ray(): ...`` runs the block on a local Ray (``num_cpus=2``) and shuts it down after; the
    test skips when ray is not installed or its raylet cannot start on an overloaded host."""
    ray = pytest.importorskip("ray")

    @contextlib.contextmanager
    def session() -> Iterator[Any]:
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        except Exception as e:  # Ray's raylet has a fixed 30 s start-up limit an overloaded host can miss
            if "timed out during startup" in str(e):
                ray.shutdown()
                pytest.skip(f"Ray could not start on this (overloaded) host: {e}")
            raise
        try:
            yield ray
        finally:
            ray.shutdown()

    return session
