"""``--backend ray`` on a local Ray (num_cpus=2) gives the same zoo as the local backend."""

from __future__ import annotations

import pytest
import torch

from eoreps.zoo.build import BuildConfig, build_zoo
from eoreps.zoo.grid import load_grid
from eoreps.zoo.modelzoo import ModelZoo
from eoreps.zoo.population import TrainOptions

pytest.importorskip("ray")


def test_ray_backend_matches_local(tmp_path, small_digits, local_ray):
    grid = load_grid(
        {
            "seed": [0, 1],
            "activation": ["relu", "tanh"],
            "init": ["normal"],
            "optimizer": ["adam"],
            "lr": [1e-2],
            "weight_decay": [0.0],
            "dropout": [0.0],
            "train_fraction": [1.0],
        }
    )
    cfgs = {}
    for backend in ("local", "ray"):
        cfgs[backend] = BuildConfig(out=tmp_path / backend, dataset="digits", arch="mlp", grid=grid, epochs=1,
                                    options=TrainOptions(precision="fp32"), chunk_size=1, backend=backend)
    with local_ray():
        summary = build_zoo(cfgs["ray"], data=small_digits)
    assert summary["n_chunks"] == 4 and summary["rows"] == 8
    assert summary["train_cpu_s"] > 0  # the workers' CPU, returned by each task
    assert build_zoo(cfgs["local"], data=small_digits)["train_cpu_s"] > 0
    a, b = ModelZoo(tmp_path / "ray"), ModelZoo(tmp_path / "local")
    assert a.properties["model_id"].tolist() == b.properties["model_id"].tolist()
    torch.testing.assert_close(a.weights_matrix(), b.weights_matrix(), rtol=0, atol=1e-5)
