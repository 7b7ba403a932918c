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
    np.testing.assert_allclose(
        dense["test_acc"], dense["dense_test_acc"], atol=1.0 / len(small_digits.y_test)
    )
    assert df[df.sparsity == 0.99]["test_acc"].mean() < dense["test_acc"].mean()
    np.testing.assert_allclose(
        df.groupby("sparsity")["achieved_sparsity"].mean().to_numpy(), [0.0, 0.5, 0.99], atol=1e-3
    )
    assert (zoo_dir / "sparsified.png").is_file() and (zoo_dir / "sparsified.parquet").is_file()
    twins = ModelZoo(zoo_dir / "twins")
    assert len(twins) == 18
    assert (
        float((twins.weights_matrix()[twins.properties["sparsity"].to_numpy() == 0.5] == 0).float().mean())
        > 0.4
    )


def _files(folder):
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*")}


def _cli(argv, capsys):
    from eoreps.cli import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    return e.value.code, capsys.readouterr()


@pytest.mark.parametrize("how", ["mode", "erofs"])
@pytest.mark.parametrize("command", ["inspect", "prune"])
def test_read_only_zoo_asks_for_out(zoo_dir, capsys, make_read_only, command, how):
    before = _files(zoo_dir)
    make_read_only(zoo_dir, how)
    code, cap = _cli(["zoo", command, str(zoo_dir)], capsys)
    err = [ln for ln in cap.err.splitlines() if ln.strip()]
    assert code == 2 and len(err) == 1 and "Traceback" not in cap.err, cap.err
    assert str(zoo_dir) in err[0] and "not writable" in err[0] and "--out" in err[0]
    assert _files(zoo_dir) == before


def test_inspect_and_prune_write_to_out_and_leave_the_zoo_alone(zoo_dir, tmp_path, capsys, make_read_only):
    before = _files(zoo_dir)
    make_read_only(zoo_dir)  # --out makes a read-only zoo usable
    code, cap = _cli(["zoo", "inspect", str(zoo_dir), "--out", str(tmp_path / "insp")], capsys)
    assert code == 0 and (tmp_path / "insp" / "inspect.png").stat().st_size > 1000
    assert f"figure: {tmp_path / 'insp' / 'inspect.png'}" in cap.out
    code, cap = _cli(
        ["zoo", "prune", str(zoo_dir), "--sparsity", "0,0.5", "--out", str(tmp_path / "pr")], capsys
    )
    assert code == 0 and str(tmp_path / "pr" / "sparsified.parquet") in cap.out
    for name in ("sparsified.parquet", "sparsified.csv", "sparsified.png", "twins/zoo.json"):
        assert (tmp_path / "pr" / name).is_file(), name
    assert _files(zoo_dir) == before
