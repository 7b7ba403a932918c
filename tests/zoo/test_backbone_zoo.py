"""Zoos of registered backbones (``--backbone`` / ``arch=backbone:NAME``): format, BatchNorm statistics,
rebuilt members, resume after an interruption, SSL initialisation, vmap chunks, bad input."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from eoreps.errors import ConfigError, DataError
from eoreps.models.io import save_backbone
from eoreps.models.registry import create_backbone
from eoreps.zoo.backbones import BackboneArch, load_backbone_grid
from eoreps.zoo.build import BuildConfig, build_zoo
from eoreps.zoo.datasets import ZooData
from eoreps.zoo.inspect import inspect_zoo
from eoreps.zoo.modelzoo import ModelZoo
from eoreps.zoo.population import TrainOptions
from eoreps.zoo.prune import sparsify_zoo
from eoreps.zoo.store import ZooStore

GRID = {
    "seed": [0, 1],
    "optimizer": ["adam", "sgd"],
    "lr": [1e-2],
    "weight_decay": [1e-4],
    "augment": ["flip"],
    "train_fraction": [0.25],
    "sampling": "random",
    "n_models": 2,
}
METRICS = ["train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "ggap"]


@pytest.fixture(scope="module")
def tiny(small_digits) -> ZooData:
    """100 training, 40 validation and 80 test digits: seconds per build even on a busy machine."""
    d = small_digits
    return ZooData(
        "digits-tiny",
        d.x_train[:100],
        d.y_train[:100],
        d.x_val[:40],
        d.y_val[:40],
        d.x_test[:80],
        d.y_test[:80],
        d.num_classes,
        False,
        "sklearn digits (tiny)",
    )


def _cfg(out: Path, grid: dict | None = None, **kw) -> BuildConfig:
    return BuildConfig(
        **{
            "out": out,
            "dataset": "digits",
            "arch": "backbone:cnn-tiny",
            "epochs": 2,
            "grid": load_backbone_grid(grid or GRID),
            "options": TrainOptions(train_eval_max=50),
            **kw,
        }
    )


def _test_acc(net: torch.nn.Module, data) -> float:
    with torch.no_grad():
        return float((net.eval()(data.x_test).argmax(1) == data.y_test).float().mean())


def test_cnn_tiny_zoo_with_batchnorm(tmp_path, tiny):
    summary = build_zoo(_cfg(tmp_path / "z"), data=tiny)
    assert summary["n_models"] == 2 and summary["n_chunks"] == 2  # BatchNorm: one member per chunk
    zoo = ModelZoo(tmp_path / "z")
    df = zoo.properties
    assert len(df) == 2 * 3 and sorted(df["epoch"].unique()) == [0, 1, 2]
    for col in ["seed", "optimizer", "lr", "weight_decay", "augment", "train_fraction", "init", *METRICS]:
        assert col in df.columns
    assert (df["arch"] == "backbone:cnn-tiny").all()
    keys = [k for k, _ in zoo.param_order]
    assert any(k.endswith("running_var") for k in keys) and keys[-1] == "head.bias"
    assert zoo.num_params == BackboneArch("cnn-tiny", (1, 8, 8), 10).num_params
    # the stored running statistics are the trained ones (not the initial 0 / 1) ...
    w = zoo.state_dict(int(df.index[(df["epoch"] == 2)][0]))
    rv = next(v for k, v in w.items() if k.endswith("running_var"))
    assert not torch.allclose(rv, torch.ones_like(rv))
    # ... and a rebuilt member reproduces its recorded test accuracy with them (eval mode)
    for i in df.index[df["epoch"] == 2]:
        assert _test_acc(zoo.build_model(int(i)), tiny) == pytest.approx(df.loc[i, "test_acc"], abs=1e-6)
    w0, w2 = zoo.weights(int(df.index[df["epoch"] == 0][0])), zoo.weights(int(df.index[df["epoch"] == 2][0]))
    assert not torch.equal(w0, w2)  # a checkpoint per epoch, after training
    # zoo inspect reads the backbone factors; zoo prune refuses a backbone zoo in one line
    rep = inspect_zoo(tmp_path / "z", out=tmp_path / "insp")
    assert set(rep["factors"]["augment"]) == {"flip"} and "activation" not in rep["factors"]
    assert Path(rep["figure"]).is_file()
    with pytest.raises(ConfigError, match="zoo of backbones"):
        sparsify_zoo(tmp_path / "z", [0.5], out=tmp_path / "pr")


def test_resume_after_interruption_gives_identical_index(tmp_path, tiny, monkeypatch):
    clean = build_zoo(_cfg(tmp_path / "clean"), data=tiny)
    assert clean["rows"] == 6
    real, calls = ZooStore.write_shard, {"n": 0}

    def dying(self, *a, **k):  # killed while writing member 1's epoch-1 shard (its epoch-0 state is saved)
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(ZooStore, "write_shard", dying)
    with pytest.raises(KeyboardInterrupt):
        build_zoo(_cfg(tmp_path / "killed"), data=tiny)
    monkeypatch.setattr(ZooStore, "write_shard", real)
    assert not (tmp_path / "killed" / "index.parquet").exists()
    assert (tmp_path / "killed" / "state" / "c00001.safetensors").is_file()
    resumed = build_zoo(_cfg(tmp_path / "killed"), data=tiny)
    assert resumed["chunks_trained"] == 1  # member 0 finished before the kill is skipped
    a, b = ModelZoo(tmp_path / "clean"), ModelZoo(tmp_path / "killed")
    pd.testing.assert_frame_equal(a.properties, b.properties)
    assert torch.equal(a.weights_matrix(), b.weights_matrix())


def test_ssl_initialisation_starts_from_the_saved_backbone(tmp_path, tiny):
    torch.manual_seed(5)
    bb = create_backbone("cnn-tiny", in_chans=1)
    save_backbone(bb, tmp_path / "ssl")
    grid = {
        **GRID,
        "init": ["random", str(tmp_path / "ssl")],
        "n_models": None,
        "sampling": "grid",
        "seed": [0],
        "optimizer": ["adam"],
    }
    build_zoo(_cfg(tmp_path / "z", grid, epochs=0), data=tiny)
    zoo = ModelZoo(tmp_path / "z")
    df = zoo.properties
    ssl_row = int(df.index[df["init"] != "random"][0])
    state = zoo.state_dict(ssl_row)
    for k, v in bb.state_dict().items():
        assert torch.equal(state[f"backbone.{k}"], v.float()), k
    rand = zoo.state_dict(int(df.index[df["init"] == "random"][0]))
    assert not torch.equal(rand["backbone.stem.0.weight"], state["backbone.stem.0.weight"])


def test_vit_members_train_together_under_vmap(tmp_path, tiny):
    """A backbone without BatchNorm: the members of a chunk run as one vmap; rebuilt members reproduce."""
    cfg = BuildConfig(
        out=tmp_path / "v",
        dataset="digits",
        arch="backbone:timm:vit_tiny_patch16_224",
        epochs=1,
        grid=load_backbone_grid(GRID),
        options=TrainOptions(train_eval_max=50),
        backbone_kwargs={"patch_size": 4, "depth": 1, "embed_dim": 16, "num_heads": 2},
    )
    s = build_zoo(cfg, data=tiny)
    assert s["n_chunks"] == 1 and s["n_models"] == 2
    zoo = ModelZoo(tmp_path / "v", epochs=[1])
    for i in range(len(zoo)):
        assert _test_acc(zoo.build_model(i), tiny) == pytest.approx(
            zoo.properties.loc[i, "test_acc"], abs=1e-6
        )


def test_missing_checkpoint_in_a_shard_is_one_line(tmp_path, tiny):
    build_zoo(_cfg(tmp_path / "z", epochs=0), data=tiny)
    idx = pd.read_parquet(tmp_path / "z" / "index.parquet")
    idx.loc[0, "row"] = 4  # the index points past the shard's only checkpoint
    idx.to_parquet(tmp_path / "z" / "index.parquet", index=False)
    zoo = ModelZoo(tmp_path / "z")
    for read in (lambda: zoo.weights(0), zoo.weights_matrix):
        with pytest.raises(DataError) as e:
            read()
        assert str(idx.loc[0, "shard"]) in str(e.value) and "\n" not in str(e.value)


def test_backbone_grid_for_a_layer_zoo_is_refused(tmp_path, tiny):
    with pytest.raises(ConfigError, match="backbone"):
        build_zoo(
            BuildConfig(out=tmp_path / "z", arch="cnn_digits", grid=load_backbone_grid(GRID)),
            data=tiny,
        )


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--backbone", "no-such-net"], "no-such-net"),
        (["--arch", "backbone:cnn_q"], "cnn_q"),
        (["--backbone", "cnn-tiny", "--arch", "cnn_s"], "cnn_s"),
        (["--arch", "cnn-small"], "--backbone cnn-small"),  # a backbone given as a zoo architecture: the hint
    ],
)
def test_cli_bad_backbone_is_one_line(tmp_path, capsys, args, needle):
    from eoreps.cli import main

    with pytest.raises(SystemExit) as e:
        main(["zoo", "build", *args, "--epochs", "0", "--out", str(tmp_path / "z")])
    assert e.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0]


def test_cli_builds_a_backbone_zoo(tmp_path, capsys):
    """--backbone in the other spelling, a narrow variant by --backbone-kwargs, a checkpoint per epoch."""
    from eoreps.cli import main

    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "seed: [0]\noptimizer: [adam]\nlr: [0.01]\nweight_decay: [0]\naugment: [none]\n"
        "train_fraction: [0.05]\n"
    )
    args = [
        "--backbone",
        "cnn_small",
        "--backbone-kwargs",
        "widths=[4,8],depths=[1,1]",
        "--dataset",
        "digits",
    ]
    with pytest.raises(SystemExit) as e:
        main(["zoo", "build", *args, "--grid", str(grid), "--epochs", "1", "--out", str(tmp_path / "z")])
    assert e.value.code == 0
    df = pd.read_parquet(tmp_path / "z" / "index.parquet")
    assert list(df["epoch"]) == [0, 1] and (df["arch"] == "backbone:cnn-small").all()
    zoo = ModelZoo(tmp_path / "z")
    assert zoo.manifest["backbone"]["kwargs"] == {"widths": [4, 8], "depths": [1, 1]}
    assert (
        zoo.num_params
        == BackboneArch("cnn-small", (1, 8, 8), 10, {"widths": [4, 8], "depths": [1, 1]}).num_params
    )
    assert zoo.num_params < BackboneArch("cnn-small", (1, 8, 8), 10).num_params / 10


def test_backbone_arch_pickles_for_ray():
    """Ray ships the architecture to its workers (cloudpickle); the built layers are not part of it."""
    arch = BackboneArch("cnn-tiny", (1, 8, 8), 10)
    back = pickle.loads(pickle.dumps(arch))
    assert back.param_shapes() == arch.param_shapes() and back.has_batchnorm


def test_ray_backend_builds_the_same_backbone_zoo(tmp_path, tiny, local_ray):
    """Each BatchNorm member is one Ray task; the zoo equals the local build's."""
    with local_ray():
        s = build_zoo(_cfg(tmp_path / "ray", epochs=1, backend="ray"), data=tiny)
    assert s["n_chunks"] == 2 and s["rows"] == 4
    build_zoo(_cfg(tmp_path / "local", epochs=1), data=tiny)
    a, b = ModelZoo(tmp_path / "ray"), ModelZoo(tmp_path / "local")
    pd.testing.assert_frame_equal(a.properties.drop(columns=METRICS), b.properties.drop(columns=METRICS))
    for col in METRICS:  # worker and driver may pick other float kernels: rounding-level differences
        np.testing.assert_allclose(a.properties[col], b.properties[col], atol=1e-4)
    torch.testing.assert_close(a.weights_matrix(), b.weights_matrix(), rtol=0, atol=1e-5)


def test_resume_with_other_backbone_kwargs_is_refused(tmp_path, tiny):
    """kwargs that keep the parameter shapes (a dropout rate) still make other members: no mixed zoo."""
    build_zoo(_cfg(tmp_path / "z", epochs=0), data=tiny)
    with pytest.raises(ConfigError, match="differs in backbone"):
        build_zoo(_cfg(tmp_path / "z", epochs=0, backbone_kwargs={"drop_rate": 0.5}), data=tiny)
    build_zoo(_cfg(tmp_path / "z", epochs=0), data=tiny)  # the original options resume
