"""Configs generate the CLI (:mod:`eoreps.cli_config`): options, ``--help`` and YAML keys of fit, pretrain,
evaluate, hyper fit and zoo build come from their config classes; old command lines still parse to the same
config; one vocabulary for precision and task kinds. The runners are replaced by a capture: nothing trains."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

import click
import pytest
import typer
from typer.testing import CliRunner

from eoreps.cli import app, main
from eoreps.cli_config import cli_fields, flag_of, spec_of
from eoreps.errors import ConfigError
from eoreps.evaluation.evaluate_config import EvaluateConfig
from eoreps.hyper.fit_options import FitOptions
from eoreps.ssl.pretrain import PretrainConfig
from eoreps.tasks.fit import FitConfig
from eoreps.vocabulary import lightning_precision, normalize_precision, normalize_task
from eoreps.zoo.build_options import BuildOptions

# command words -> (config class, runner replaced by the capture, what of its arguments is the config)
GENERATED = {
    ("fit",): (FitConfig, "eoreps.tasks.fit.fit"),
    ("pretrain",): (PretrainConfig, "eoreps.ssl.pretrain.run_pretrain"),
    ("evaluate",): (EvaluateConfig, "eoreps.evaluation.study.run_study"),
    ("hyper", "fit"): (FitOptions, "eoreps.hyper.train.fit"),
    ("zoo", "build"): (BuildOptions, "eoreps.zoo.build.build_zoo"),
}


class Captured(Exception):
    def __init__(self, args: tuple) -> None:
        super().__init__("captured")
        self.cfg = args[0]


def _capture(monkeypatch, target: str) -> None:
    module, name = target.rsplit(".", 1)

    def fake(*args: Any, **kwargs: Any) -> None:
        raise Captured(args)

    monkeypatch.setattr(importlib.import_module(module), name, fake)


def _config(monkeypatch, words: tuple[str, ...], argv: list[str]) -> Any:
    _capture(monkeypatch, GENERATED[words][1])
    with pytest.raises(Captured) as e:
        main([*words, *argv])
    return e.value.cfg


def _command(words: tuple[str, ...]) -> click.Command:
    cmd: Any = typer.main.get_command(app)
    for w in words:
        cmd = cmd.commands[w]
    return cmd


@pytest.mark.parametrize("words", list(GENERATED), ids=" ".join)
def test_help_lists_every_cli_field_with_its_help(words, monkeypatch):
    cls = GENERATED[words][0]
    params = {p.name: p for p in _command(words).params}
    monkeypatch.setenv("COLUMNS", "400")
    text = CliRunner().invoke(app, [*words, "--help"], env={"COLUMNS": "400"}).output
    assert cli_fields(cls), cls
    for f in cli_fields(cls):
        spec = spec_of(f)
        assert f.name in params and flag_of(f) in params[f.name].opts, (f.name, params.get(f.name))
        assert params[f.name].help == spec.help
        assert flag_of(f) in text and spec.help.split()[0] in text


@pytest.mark.parametrize("words", list(GENERATED), ids=" ".join)
def test_yaml_keys_are_the_config_fields(words, monkeypatch, tmp_path):
    """Every config field is a key of --config: an option (checked by the option's type) or config-only."""
    cls = GENERATED[words][0]
    params = {p.name for p in _command(words).params}
    only = [f for f in dataclasses.fields(cls) if spec_of(f) is None]
    for f in dataclasses.fields(cls):
        assert f.name in params or f in only
    assert {f.name for f in cli_fields(cls)} <= params


def test_a_config_only_field_in_yaml_reaches_the_config(monkeypatch, tmp_path):
    conf = tmp_path / "fit.yaml"
    conf.write_text("simeo_n: 120\nmax_eval: 16\nlabel_fraction: 0.5\n")
    cfg = _config(monkeypatch, ("fit",), ["--config", str(conf), "--out", str(tmp_path / "o")])
    assert (cfg.simeo_n, cfg.max_eval, cfg.label_fraction) == (120, 16, 0.5)
    conf.write_text("simeo_n: 120\nepochs: 4\n")  # a config-only field the user gave is kept by --quick
    cfg = _config(monkeypatch, ("fit",), ["--config", str(conf), "--quick", "--out", str(tmp_path / "o")])
    assert (cfg.simeo_n, cfg.epochs, cfg.backbone) == (120, 4, "cnn-tiny")


@pytest.mark.parametrize("text, words", [("simeo_nn: 5\n", ["simeo_nn", "simeo_n"]),
                                         ("simeo_n: many\n", ["simeo_n", "many"]),
                                         ("tile_size: 16\n", ["tile_size"])])
def test_a_config_only_typo_or_wrong_type_is_one_line_naming_file_and_key(text, words, tmp_path, capsys):
    conf = tmp_path / "bad.yaml"
    conf.write_text(text)
    with pytest.raises(SystemExit) as e:
        main(["fit", "--config", str(conf), "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "Traceback" not in err[0] and str(conf) in err[0], err
    assert all(w in err[0] for w in words), err


OLD_COMMAND_LINES = [
    (("fit",), ["--modalities", "s2,s1", "--devices", "auto", "--max-train", "0", "--task-weights", ""],
     {"modalities": ["s2", "s1"], "devices": "auto", "max_train": None, "task_weights": None}),
    (("fit",), ["--devices", "2", "--max-train", "100", "--task-weights", "0.2,0.8", "--share-weights",
                "--channels-last", "--heteroscedastic", "--eval-splits", "test,shifted", "--task", "regress"],
     {"devices": 2, "max_train": 100, "task_weights": [0.2, 0.8], "share_weights": True, "channels_last": True,
      "heteroscedastic": True, "eval_splits": ["test", "shifted"], "task": "regress"}),
    (("fit",), ["--precision", "bf16-mixed", "--task", "single"], {"precision": "bf16-mixed", "task": "classify"}),
    (("fit",), ["--precision", "bf16", "--task", "multi"], {"precision": "bf16-mixed", "task": "multilabel"}),
    (("fit",), ["--precision", "auto"], {"precision": "32-true"}),
    (("pretrain",), ["--method", "simclr", "--max-samples", "0", "--no-knn", "--resume", "--devices", "auto",
                     "--method-kwargs", "temperature=0.2", "--backbone-kwargs", "img_size=32,patch_size=4"],
     {"method": "simclr", "max_samples": None, "knn": False, "resume": True, "devices": "auto",
      "method_kwargs": {"temperature": 0.2}, "backbone_kwargs": {"img_size": 32, "patch_size": 4}}),
    (("pretrain",), ["--precision", "fp16", "--max-samples", "50"], {"precision": "16-mixed", "max_samples": 50}),
    (("hyper", "fit"), ["--zoo", "Z", "--no-permute", "--zoo-epochs", "15,20", "--precision", "32-true",
                        "--d-model", "64", "--layers", "2", "--latent-dim", "16"],
     {"augment.permute": False, "zoo_epochs": [15, 20], "precision": "fp32", "model.d_model": 64,
      "model.n_heads": 2, "model.enc_layers": 2, "model.dec_layers": 2, "model.proj_dim": 16}),
    (("hyper", "fit"), ["--zoo", "Z", "--align", "--no-token-stats"],
     {"augment.permute": False, "augment.align": True, "model.token_stats": False, "precision": "bf16"}),
    (("zoo", "build"), ["--precision", "bf16-mixed", "--engine", "torch", "--epochs", "3", "--chunk-size", "4"],
     {"options.precision": "bf16", "options.engine": "torch", "epochs": 3, "chunk_size": 4}),
    (("zoo", "build"), [], {"options.precision": "auto", "epochs": 10, "dataset": "digits", "arch": "cnn_digits"}),
]


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize("words, argv, expected", OLD_COMMAND_LINES,
                         ids=[f"{' '.join(w)}-{i}" for i, (w, _, _) in enumerate(OLD_COMMAND_LINES)])
def test_old_command_lines_parse_to_the_same_config(words, argv, expected, monkeypatch, tmp_path):
    argv = [str(tmp_path / "zoo") if a == "Z" else a for a in argv]
    cfg = _config(monkeypatch, words, [*argv, "--out", str(tmp_path / "o")])
    for path, value in expected.items():
        assert _get(cfg, path) == value, path


def test_evaluate_old_command_line_builds_the_same_study(monkeypatch, tmp_path):
    cfg = _config(monkeypatch, ("evaluate",), ["--protocol", "knn,linear", "--fractions", "0.1,1.0", "--size", "0",
                                               "--task", "multi", "--k", "5", "--epochs", "4", "--modalities", "s2",
                                               "--baselines", "--out", str(tmp_path / "o")])
    assert cfg.protocols == ["knn", "linear"] and cfg.fractions == [0.1, 1.0] and cfg.data.size is None
    assert cfg.data.task == "multilabel" and cfg.options.knn.k == 5 and cfg.options.train.epochs == 4
    assert cfg.methods[0].name == "random-init" and cfg.methods[0].fusion == "early" and cfg.baselines


def test_precision_vocabulary_is_one_function():
    for spelling, short in [("32-true", "fp32"), ("fp32", "fp32"), ("bf16-mixed", "bf16"), ("BF16", "bf16"),
                            ("16-mixed", "fp16"), ("auto", "auto")]:
        assert normalize_precision(spelling) == short
    assert [lightning_precision(p) for p in ("fp32", "auto", "bf16", "fp16", "bf16-mixed")] == \
        ["32-true", "32-true", "bf16-mixed", "16-mixed", "bf16-mixed"]
    with pytest.raises(ConfigError, match="unknown precision 'fp8'"):
        normalize_precision("fp8")
    with pytest.raises(ConfigError, match="choose one of: bf16, fp32"):
        normalize_precision("fp16", ("bf16", "fp32"))


def test_task_vocabulary_accepts_the_dataset_spellings():
    assert [normalize_task(t) for t in ("single", "multi", "classify", "segment", "regress")] == \
        ["classify", "multilabel", "classify", "segment", "regress"]
    with pytest.raises(ConfigError, match="did you mean 'multilabel'"):
        normalize_task("multilable")


@pytest.mark.parametrize("argv, words", [(["zoo", "build", "--precision", "fp16"], ["fp16", "auto, bf16, fp32"]),
                                         (["hyper", "fit", "--zoo", "Z", "--precision", "16-mixed"], ["16-mixed"]),
                                         (["fit", "--precision", "fp8"], ["fp8"]),
                                         (["fit", "--task", "mlabel"], ["mlabel"])])
def test_bad_precision_or_task_is_one_line(argv, words, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "z") if a == "Z" else a for a in argv] + ["--out", str(tmp_path / "o")])
    assert e.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "Traceback" not in err[0] and all(w in err[0] for w in words), err


def test_library_errors_name_the_field_and_the_cli_names_the_flag(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"^label_fraction=1.5 must be in \(0, 1\]$"):
        FitConfig(label_fraction=1.5)
    with pytest.raises(SystemExit) as e:
        main(["fit", "--label-fraction", "1.5", "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert err == ["eoreps: error: --label-fraction 1.5 must be in (0, 1]"], err


def test_study_yaml_accepts_the_dataset_task_spellings():
    from eoreps.evaluation.study import StudyConfig

    cfg = StudyConfig(name="t", data={"data": "simeo", "task": "multi", "modalities": ["s2"]},
                      methods=[{"name": "random-init", "backbone": "random", "arch": "cnn-tiny"}], protocols=["knn"])
    assert cfg.data.task == "multilabel"


def test_building_the_cli_imports_no_torch():
    """The options come from the config classes at start-up: reading them must stay cheap (``eoreps --help``)."""
    import subprocess
    import sys

    code = "import sys, eoreps.cli; print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
