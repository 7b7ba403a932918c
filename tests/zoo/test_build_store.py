"""Zoo build end to end: format, ModelZoo, rebuilt models, resume after a kill, corrupt shards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from eoreps.errors import ConfigError, DataError
from eoreps.zoo.architectures import make_arch
from eoreps.zoo.build import BuildConfig, build_zoo
from eoreps.zoo.grid import load_grid
from eoreps.zoo.modelzoo import ModelZoo
from eoreps.zoo.native import NativeUnavailable
from eoreps.zoo.native import load as load_native
from eoreps.zoo.population import PopulationTrainer, TrainOptions
from eoreps.zoo.store import ZooStore

GRID = {"seed": [0, 1], "activation": ["relu", "tanh"], "init": ["kaiming_uniform", "normal"],
        "optimizer": ["adam"], "lr": [2e-2], "weight_decay": [1e-4], "dropout": [0.0, 0.2],
        "train_fraction": [1.0, 0.5], "sampling": "random", "n_models": 12}


def _cfg(out: Path, **kw) -> BuildConfig:
    base = dict(out=out, dataset="digits", arch="cnn_digits", grid=load_grid(GRID), epochs=2, seed=0,
                options=TrainOptions(precision="fp32"), chunk_size=2)
    base.update(kw)
    return BuildConfig(**base)


@pytest.fixture(scope="module")
def built(tmp_path_factory, small_digits):
    out = tmp_path_factory.mktemp("zoo")
    summary = build_zoo(_cfg(out), data=small_digits)
    return out, summary


def test_format_counts_and_properties(built):
    out, summary = built
    assert summary["n_models"] == 12 and summary["rows"] == 12 * 3
    idx = pd.read_parquet(out / "index.parquet")
    assert len(idx) == 36 and not idx.duplicated(["model_id", "epoch"]).any()
    assert set(idx["epoch"]) == {0, 1, 2}
    for col in ("seed", "activation", "init", "optimizer", "lr", "weight_decay", "dropout", "train_fraction",
                "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "ggap"):
        assert col in idx.columns
    np.testing.assert_allclose(idx["ggap"], idx["train_acc"] - idx["test_acc"])
    last = idx[idx.epoch == 2]
    first = idx[idx.epoch == 0]
    # members really learn (200 images, 2 epochs, some with half the data and dropout 0.5: far from converged)
    assert last["test_acc"].mean() > first["test_acc"].mean() + 0.1
    assert last["train_loss"].mean() < first["train_loss"].mean() - 0.2
    assert (out / "index.csv").is_file() and (out / "checksums.json").is_file()
    assert not list((out / "state").glob("*.safetensors"))  # resume states removed when chunks finish


def test_modelzoo_items_and_rebuilt_models_reproduce_recorded_accuracy(built, small_digits):
    out, _ = built
    zoo = ModelZoo(out, epochs=[2])
    assert len(zoo) == 12
    w, props = zoo[0]
    assert w.shape == (zoo.num_params,) and w.dtype == torch.float32
    assert [k for k, _ in zoo.param_order] == list(zoo.build_model(0).state_dict())
    for i in range(len(zoo)):
        net = zoo.build_model(i)
        with torch.no_grad():
            acc = (net(small_digits.x_test).argmax(1) == small_digits.y_test).double().mean().item()
        # float32 evaluation both times: identical up to an argmax tie (at most one test image)
        assert abs(acc - zoo.properties.iloc[i]["test_acc"]) <= 1.0 / len(small_digits.y_test) + 1e-9
    assert zoo.weights_matrix().shape == (12, zoo.num_params)
    assert torch.equal(zoo.weights_matrix()[3], zoo.weights(3))


def test_modelzoo_dataset_is_the_one_its_manifest_names(built, tmp_path):
    import json
    import shutil

    out, _ = built
    data = ModelZoo(out).dataset()  # built with dataset="digits", seed 0
    assert data.name == "digits" and tuple(data.x_train.shape[1:]) == ModelZoo(out).arch.in_shape
    bad = tmp_path / "zoo"
    shutil.copytree(out, bad)
    manifest = json.loads((bad / "zoo.json").read_text())
    del manifest["dataset_spec"]
    (bad / "zoo.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="names no data set"):
        ModelZoo(bad).dataset()


def test_rebuild_refuses_other_options(built, small_digits):
    out, _ = built
    with pytest.raises(ConfigError, match="other options"):
        build_zoo(_cfg(out, epochs=3), data=small_digits)


def test_corrupt_shard_gives_one_line_naming_it_and_rebuild_repairs(tmp_path, small_digits):
    out = tmp_path / "zoo"
    build_zoo(_cfg(out, epochs=1), data=small_digits)
    shard = out / "shards" / "c00001-e001.safetensors"
    raw = bytearray(shard.read_bytes())
    raw[-5] ^= 0xFF
    shard.write_bytes(bytes(raw))
    zoo = ModelZoo(out)
    with pytest.raises(DataError) as e:
        zoo.weights_matrix()
    msg = str(e.value)
    assert "c00001-e001.safetensors" in msg and "corrupt" in msg and "\n" not in msg
    # the CLI prints it as one line with exit code 2
    r = subprocess.run([sys.executable, "-m", "eoreps.cli", "zoo", "inspect", str(out)], capture_output=True,
                       text=True, env={**os.environ, "EOREPS_NO_PROGRESS": "1"})
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "c00001-e001.safetensors" in r.stderr
    build_zoo(_cfg(out, epochs=1), data=small_digits)  # resume retrains the damaged chunk
    ModelZoo(out).weights_matrix()


def test_resume_after_kill_loses_and_duplicates_nothing(tmp_path):
    """Kill a CLI build (SIGKILL) mid-way, resume it, compare with an uninterrupted build."""
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "seed: [0, 1, 2]\nactivation: [relu, tanh]\ninit: [kaiming_uniform]\noptimizer: [adam, sgd]\n"
        "lr: [0.01]\nweight_decay: [0.0001]\ndropout: [0.0]\ntrain_fraction: [0.5]\n"
    )
    args = [
        "zoo",
        "build",
        "--dataset",
        "digits",
        "--arch",
        "cnn_digits",
        "--grid",
        str(grid),
        "--epochs",
        "3",
        "--chunk-size",
        "2",
        "--precision",
        "fp32",
        "--threads",
        "2",
    ]
    env = {**os.environ, "EOREPS_NO_PROGRESS": "1"}
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "eoreps.cli", *args, "--out", str(killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    target = killed / "shards" / "c00002-e001.safetensors"  # chunk 2 of 6 part-way through
    t0 = time.time()
    while not target.exists() and proc.poll() is None and time.time() - t0 < 120:
        time.sleep(0.02)
    assert proc.poll() is None, (
        "build finished before it could be killed: " + proc.stderr.read().decode()[-500:]
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "index.parquet").exists()
    from eoreps.cli import main

    for out in (killed, tmp_path / "clean"):
        with pytest.raises(SystemExit) as e:
            main([*args, "--out", str(out)])
        assert e.value.code == 0
    a = ModelZoo(killed)
    b = ModelZoo(tmp_path / "clean")
    assert len(a) == len(b) == 12 * 4
    assert not a.properties.duplicated(["model_id", "epoch"]).any()
    assert sorted(a.properties["model_id"].unique()) == list(range(12))
    torch.testing.assert_close(a.weights_matrix(), b.weights_matrix(), rtol=0, atol=1e-5)
    assert not list((killed / "shards").glob(".*.tmp"))
    assert ZooStore(killed).checksums().keys() == ZooStore(tmp_path / "clean").checksums().keys()


def test_resume_removes_temporary_files_of_a_write_killed_midway(built, small_digits):
    out, _ = built
    stale = [out / "shards" / ".c00000-e002.safetensors.k1ll3d.tmp", out / ".zoo.json.x.tmp"]
    for p in stale:
        p.write_bytes(b"partial")
    build_zoo(_cfg(out), data=small_digits)  # everything is done: the resume only tidies up
    assert not any(p.exists() for p in stale)
    assert ZooStore(out).verify_shard("c00000-e002.safetensors")  # the shard it was to replace is intact


def test_manifest_records_the_engine_and_old_zoos_resume_on_torch(tmp_path, small_digits, monkeypatch):
    cfg = _cfg(tmp_path / "z", options=TrainOptions(), epochs=1)  # engine and precision 'auto'
    build_zoo(cfg, data=small_digits)
    store = ZooStore(tmp_path / "z")
    opts = store.read_manifest()["options"]
    try:
        load_native(make_arch("cnn_digits", small_digits.in_shape, small_digits.num_classes))
        want = ("native", "fp32")
    except NativeUnavailable:
        want = ("torch", "bf16")
    assert (opts["engine"], opts["precision"]) == want
    # a zoo written before engines existed (no options.engine, bf16): extending it with default options
    # continues on the torch engine instead of refusing the zoo
    m = store.read_manifest()
    m["options"].pop("engine")
    m["options"]["precision"] = "bf16"
    m.pop("format_version")
    store.write_manifest(m)
    used = []
    orig = PopulationTrainer.__init__

    def spy(self, *a, **kw):
        orig(self, *a, **kw)
        used.append(self.opt.engine)

    monkeypatch.setattr(PopulationTrainer, "__init__", spy)
    for p in (tmp_path / "z" / "shards").glob("c00000-e001*"):
        p.unlink()  # chunk 0's last epoch is missing: the resume retrains that chunk
    build_zoo(_cfg(tmp_path / "z", options=TrainOptions(), epochs=1), data=small_digits)
    assert used == ["torch"]
    if want[0] == "native":
        with pytest.raises(ConfigError, match="differs in options"):
            build_zoo(
                _cfg(tmp_path / "z", options=TrainOptions(engine="native"), epochs=1), data=small_digits
            )
