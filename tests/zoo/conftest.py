"""Fixtures for the zoo tests: a small real data set (sklearn digits) and tiny member lists."""

from __future__ import annotations

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
