"""Fixtures for the hyper-representation tests: one tiny real zoo (sklearn digits), built once."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_GRID = {"seed": [0, 1, 2], "activation": ["relu", "tanh"], "init": ["kaiming_uniform", "normal"],
             "optimizer": ["adam"], "lr": [1e-2, 1e-3], "weight_decay": [1e-4], "dropout": [0.0],
             "train_fraction": [1.0], "sampling": "random", "n_models": 16}


def build_tiny_zoo(out: Path, n_train: int = 300, epochs: int = 2) -> Path:
    """16 cnn_digits members, ``epochs`` epochs on the first ``n_train`` digits training images."""
    from eoreps.zoo.build import BuildConfig, build_zoo
    from eoreps.zoo.datasets import ZooData, load_digits
    from eoreps.zoo.grid import load_grid
    from eoreps.zoo.population import TrainOptions

    d = load_digits(seed=0)
    data = ZooData("digits", d.x_train[:n_train], d.y_train[:n_train], d.x_val, d.y_val, d.x_test, d.y_test,
                   d.num_classes, False, f"sklearn digits (first {n_train})")
    build_zoo(
        BuildConfig(
            out=out,
            dataset="digits",
            arch="cnn_digits",
            grid=load_grid(TINY_GRID),
            epochs=epochs,
            seed=0,
            options=TrainOptions(precision="fp32"),
            chunk_size=64,
        ),
        data=data,
    )
    return out


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory) -> Path:
    """A tiny zoo directory: 16 digits CNNs x epochs 0..2 (48 checkpoints)."""
    return build_tiny_zoo(tmp_path_factory.mktemp("hyper_zoo") / "zoo")
