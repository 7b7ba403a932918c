"""`zoo inspect` and sparsified twins on a tiny real-digits zoo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eoreps.zoo.architectures import make_arch
from eoreps.zoo.build import BuildConfig, build_zoo
from eoreps.zoo.grid import load_grid
from eoreps.zoo.inspect import format_report, inspect_zoo
from eoreps.zoo.modelzoo import ModelZoo
from eoreps.zoo.population import TrainOptions
from eoreps.zoo.prune import magnitude_prune, sparsify_zoo, weight_mask


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory, small_digits):
    out = tmp_path_factory.mktemp("zoo")
    grid = load_grid({"seed": [0, 1, 2], "activation": ["relu", "gelu"], "init": ["kaiming_normal"],
                      "optimizer": ["adam"], "lr": [1e-2], "weight_decay": [0.0], "dropout": [0.0],
                      "train_fraction": [1.0]})
    build_zoo(BuildConfig(out=out, dataset="digits", arch="mlp", grid=grid, epochs=2,
                          options=TrainOptions(precision="fp32")), data=small_digits)
    return out


def test_inspect_counts_and_figure(zoo_dir):
    rep = inspect_zoo(zoo_dir)
    assert rep["counts"]["models"] == 6 and rep["counts"]["checkpoints"] == 18
    assert rep["factors"]["activation"] == {"gelu": 3, "relu": 3}
    assert (zoo_dir / "inspect.png").stat().st_size > 1000
    assert "test_acc" in format_report(rep)


def test_magnitude_prune_zeroes_smallest_weights_only():
    arch = make_arch("mlp")
    w = torch.randn(3, arch.num_params)
    mask = weight_mask(arch)
    p = magnitude_prune(w, mask, 0.5)
    assert torch.equal(p[:, ~mask], w[:, ~mask])  # biases untouched
    k = int(round(0.5 * int(mask.sum())))
    for r in range(3):
        zeroed = (p[r, mask] == 0)
        assert int(zeroed.sum()) == k
        kept = w[r, mask][~zeroed].abs().min()
        dropped = w[r, mask][zeroed].abs().max()
        assert dropped <= kept
    assert torch.equal(magnitude_prune(w, mask, 0.0), w)


def test_sparsified_twins_curve(zoo_dir, small_digits):
    df = sparsify_zoo(zoo_dir, [0.0, 0.5, 0.99], data=small_digits)
    assert len(df) == 6 * 3
    dense = df[df.sparsity == 0.0]
    np.testing.assert_allclose(dense["test_acc"], dense["dense_test_acc"], atol=1.0 / len(small_digits.y_test))
    assert df[df.sparsity == 0.99]["test_acc"].mean() < dense["test_acc"].mean()
    np.testing.assert_allclose(df.groupby("sparsity")["achieved_sparsity"].mean().to_numpy(), [0.0, 0.5, 0.99],
                               atol=1e-3)
    assert (zoo_dir / "sparsified.png").is_file() and (zoo_dir / "sparsified.parquet").is_file()
    twins = ModelZoo(zoo_dir / "twins")
    assert len(twins) == 18
    assert float((twins.weights_matrix()[twins.properties["sparsity"].to_numpy() == 0.5] == 0).float().mean()) > 0.4
