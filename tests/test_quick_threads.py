"""``--quick`` never replaces an option the user gave (and says what it changed); ``--threads`` is taken and
applied by every command that computes. The runners are replaced by a capture, so nothing trains."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
import torch
import yaml

from eoreps.cli import main


class Captured(Exception):
    """Raised by the fake runner: carries its arguments and the torch threads it ran with."""

    def __init__(self, args: tuple, kwargs: dict) -> None:
        super().__init__("captured")
        self.args_, self.kwargs, self.threads = args, kwargs, torch.get_num_threads()


def _capture(monkeypatch, target: str) -> None:
    module, name = target.rsplit(".", 1)

    def fake(*args: Any, **kwargs: Any) -> None:
        raise Captured(args, kwargs)

    monkeypatch.setattr(importlib.import_module(module), name, fake)


def _run(monkeypatch, target: str, argv: list[str]) -> Captured:
    _capture(monkeypatch, target)
    with pytest.raises(Captured) as e:
        main(argv)
    return e.value


@pytest.fixture
def study_yaml(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({
        "name": "t", "data": {"data": "simeo", "task": "classify", "modalities": ["s2"]},
        "methods": [{"name": "random-init", "backbone": "random", "arch": "cnn-tiny"}],
        "protocols": ["knn"], "fractions": [1.0], "seeds": 3}))
    return path


COMMANDS = {
    "fit": ("eoreps.tasks.fit.fit", ["fit"]),
    "pretrain": ("eoreps.ssl.pretrain.run_pretrain", ["pretrain"]),
    "evaluate": ("eoreps.evaluation.study.run_study", ["evaluate"]),
    "study": ("eoreps.evaluation.study.run_study", ["study", "label-efficiency", "--config", "STUDY"]),
    "demo": ("eoreps.evaluation.headline.run_headline", ["demo"]),
    "experiment fusion": ("eoreps.tasks.experiments.run_fusion", ["experiment", "fusion"]),
    "experiment weak-supervision": ("eoreps.tasks.experiments.weak.run_weak_supervision",
                                    ["experiment", "weak-supervision"]),
    "zoo build": ("eoreps.zoo.build.build_zoo", ["zoo", "build"]),
    "hyper fit": ("eoreps.hyper.train.fit", ["hyper", "fit", "--zoo", "ZOO"]),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_threads_is_taken_and_applied(command, monkeypatch, tmp_path, study_yaml):
    target, argv = COMMANDS[command]
    argv = [str(study_yaml) if a == "STUDY" else str(tmp_path / "zoo") if a == "ZOO" else a for a in argv]
    torch.set_num_threads(2)
    got = _run(monkeypatch, target, [*argv, "--out", str(tmp_path / "out"), "--threads", "1"])
    assert got.threads == 1


def test_fit_quick_keeps_the_given_epochs_and_says_what_it_changed(monkeypatch, tmp_path, capsys):
    cfg = _run(
        monkeypatch,
        "eoreps.tasks.fit.fit",
        ["fit", "--quick", "--epochs", "2", "--backbone", "cnn-small", "--out", str(tmp_path)],
    ).args_[0]
    assert cfg.epochs == 2 and cfg.backbone == "cnn-small" and cfg.batch_size == 32 and cfg.max_train == 64
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("--quick:")]
    assert len(lines) == 1 and "batch-size 64 -> 32" in lines[0] and "epochs" not in lines[0]
    cfg = _run(monkeypatch, "eoreps.tasks.fit.fit", ["fit", "--quick", "--out", str(tmp_path)]).args_[0]
    assert cfg.epochs == 1 and cfg.backbone == "cnn-tiny"
    assert "epochs 15 -> 1" in capsys.readouterr().out


def test_quick_keeps_options_from_the_config_file(monkeypatch, tmp_path):
    conf = tmp_path / "fit.yaml"
    conf.write_text("epochs: 3\nbatch_size: 8\n")
    cfg = _run(monkeypatch, "eoreps.tasks.fit.fit", ["fit", "--quick", "--config", str(conf),
                                                      "--out", str(tmp_path)]).args_[0]
    assert (cfg.epochs, cfg.batch_size) == (3, 8)


def test_pretrain_quick_keeps_the_given_epochs_and_batch_size(monkeypatch, tmp_path):
    cfg = _run(
        monkeypatch,
        "eoreps.ssl.pretrain.run_pretrain",
        ["pretrain", "--quick", "--epochs", "5", "--batch-size", "64", "--out", str(tmp_path)],
    ).args_[0]
    r = cfg.resolved()
    assert (r.epochs, r.batch_size, r.max_samples) == (5, 64, 128)


def test_evaluate_quick_keeps_the_given_seeds_and_epochs(monkeypatch, tmp_path):
    cfg = _run(monkeypatch, "eoreps.evaluation.study.run_study",
               ["evaluate", "--quick", "--seeds", "3", "--epochs", "7", "--out", str(tmp_path)]).args_[0]
    assert cfg.seed_list == [0, 1, 2] and cfg.options.train.epochs == 7
    cfg = _run(
        monkeypatch, "eoreps.evaluation.study.run_study", ["evaluate", "--quick", "--out", str(tmp_path)]
    ).args_[0]
    assert cfg.seed_list == [0, 1] and cfg.options.train.epochs == 3


def test_zoo_build_quick_keeps_the_given_epochs(monkeypatch, tmp_path):
    cfg = _run(monkeypatch, "eoreps.zoo.build.build_zoo",
               ["zoo", "build", "--quick", "--epochs", "5", "--out", str(tmp_path / "z")]).args_[0]
    assert cfg.epochs == 5 and cfg.grid.n_models <= 16
    cfg = _run(
        monkeypatch, "eoreps.zoo.build.build_zoo", ["zoo", "build", "--quick", "--out", str(tmp_path / "y")]
    ).args_[0]
    assert cfg.epochs == 2


def test_hyper_fit_quick_keeps_the_given_model_size(monkeypatch, tmp_path):
    cfg = _run(
        monkeypatch,
        "eoreps.hyper.train.fit",
        [
            "hyper",
            "fit",
            "--zoo",
            str(tmp_path / "zoo"),
            "--quick",
            "--epochs",
            "4",
            "--d-model",
            "64",
            "--out",
            str(tmp_path / "r"),
        ],
    ).args_[0]
    assert cfg.epochs == 4 and cfg.model.d_model == 64 and cfg.model.enc_layers == 1
