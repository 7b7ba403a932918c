"""Configs generate the CLI (:mod:`eoreps.cli_config`): options, ``--help`` and YAML keys of fit, pretrain,
evaluate, hyper fit and zoo build come from their config classes; old command lines still parse to the same
config; one vocabulary for precision and task kinds. The runners are replaced by a capture: nothing trains."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import click
import pytest
import typer
from typer.testing import CliRunner

from eoreps.cli import app, main
from eoreps.cli_config import cli_fields, flag_of, spec_of
from eoreps.data.options import GenerateOptions
from eoreps.data.options import InspectOptions as DataInspectOptions
from eoreps.errors import ConfigError
from eoreps.evaluation.embed import EmbedConfig
from eoreps.evaluation.evaluate_config import EvaluateConfig
from eoreps.evaluation.study_options import HeadlineOptions, StudyOptions
from eoreps.hyper.fit_options import FitOptions
from eoreps.hyper.options import DemoOptions, ProbeOptions, SampleConfig
from eoreps.ssl.pretrain import PretrainConfig
from eoreps.tasks.experiment_options import ExperimentOptions
from eoreps.tasks.fit import FitConfig
from eoreps.vocabulary import lightning_precision, normalize_precision, normalize_task
from eoreps.zoo.build_options import BuildOptions
from eoreps.zoo.inspect_options import InspectOptions, PruneOptions


def _first(args: tuple, kwargs: dict) -> Any:
    return args[0]


def _named(*names: str) -> Callable[[tuple, dict], Any]:
    """The runner's positional arguments by these names, plus its keyword arguments, as one namespace."""
    return lambda args, kwargs: SimpleNamespace(**dict(zip(names, args, strict=False)), **kwargs)


# command words -> (config class, runner replaced by the capture, what of its arguments is the config)
GENERATED: dict[tuple[str, ...], tuple[type, str, Callable[[tuple, dict], Any]]] = {
    ("fit",): (FitConfig, "eoreps.tasks.fit.fit", _first),
    ("pretrain",): (PretrainConfig, "eoreps.ssl.pretrain.run_pretrain", _first),
    ("embed",): (EmbedConfig, "eoreps.evaluation.embed.run_embed", _first),
    ("evaluate",): (EvaluateConfig, "eoreps.evaluation.study.run_study", _first),
    ("hyper", "fit"): (FitOptions, "eoreps.hyper.train.fit", _first),
    ("zoo", "build"): (BuildOptions, "eoreps.zoo.build.build_zoo", _first),
    ("study", "label-efficiency"): (StudyOptions, "eoreps.evaluation.study.run_study", _first),
    ("demo",): (HeadlineOptions, "eoreps.evaluation.headline.run_headline", _named("out")),
    ("experiment", "fusion"): (ExperimentOptions, "eoreps.tasks.experiments.run_fusion", _named("out", "s")),
    ("experiment", "multitask"): (
        ExperimentOptions,
        "eoreps.tasks.experiments.run_multitask",
        _named("out", "s"),
    ),
    ("experiment", "uncertainty"): (
        ExperimentOptions,
        "eoreps.tasks.experiments.run_uncertainty",
        _named("out", "s"),
    ),
    ("experiment", "weak-supervision"): (
        ExperimentOptions,
        "eoreps.tasks.experiments.weak.run_weak_supervision",
        _named("out", "s"),
    ),
    ("hyper", "evaluate"): (
        ProbeOptions,
        "eoreps.hyper.probes.evaluate",
        _named("zoo", "rep", "out", "early_epoch", "max_rows", "seed"),
    ),
    ("hyper", "sample"): (SampleConfig, "eoreps.hyper.sample.run_sample", _first),
    ("hyper", "demo"): (DemoOptions, "eoreps.hyper.demo.run_demo", _named("out")),
    ("data", "generate"): (GenerateOptions, "eoreps.data.simeo.write_simeo", _named("out")),
    ("data", "inspect"): (DataInspectOptions, "eoreps.data.inspect.inspect_path", _named("path")),
    ("zoo", "inspect"): (InspectOptions, "eoreps.zoo.inspect.inspect_zoo", _named("path")),
    ("zoo", "prune"): (PruneOptions, "eoreps.zoo.prune.sparsify_zoo", _named("path", "sparsities", "epochs")),
}


class Captured(Exception):
    def __init__(self, cfg: Any) -> None:
        super().__init__("captured")
        self.cfg = cfg


def _capture(monkeypatch, target: str, pick: Callable[[tuple, dict], Any] = _first) -> None:
    module, name = target.rsplit(".", 1)

    def fake(*args: Any, **kwargs: Any) -> None:
        raise Captured(pick(args, kwargs))

    monkeypatch.setattr(importlib.import_module(module), name, fake)


def _config(monkeypatch, words: tuple[str, ...], argv: list[str]) -> Any:
    _capture(monkeypatch, *GENERATED[words][1:])
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
    (
        ("fit",),
        ["--modalities", "s2,s1", "--devices", "auto", "--max-train", "0", "--task-weights", ""],
        {"modalities": ["s2", "s1"], "devices": "auto", "max_train": None, "task_weights": None},
    ),
    (
        ("fit",),
        [
            "--devices",
            "2",
            "--max-train",
            "100",
            "--task-weights",
            "0.2,0.8",
            "--share-weights",
            "--channels-last",
            "--heteroscedastic",
            "--eval-splits",
            "test,shifted",
            "--task",
            "regress",
        ],
        {
            "devices": 2,
            "max_train": 100,
            "task_weights": [0.2, 0.8],
            "share_weights": True,
            "channels_last": True,
            "heteroscedastic": True,
            "eval_splits": ["test", "shifted"],
            "task": "regress",
        },
    ),
    (("fit",), ["--precision", "bf16-mixed", "--task", "single"], {"precision": "bf16", "task": "classify"}),
    (("fit",), ["--precision", "bf16", "--task", "multi"], {"precision": "bf16", "task": "multilabel"}),
    (("fit",), ["--precision", "auto"], {"precision": "fp32"}),
    (
        ("pretrain",),
        [
            "--method",
            "simclr",
            "--max-samples",
            "0",
            "--no-knn",
            "--resume",
            "--devices",
            "auto",
            "--method-kwargs",
            "temperature=0.2",
            "--backbone-kwargs",
            "img_size=32,patch_size=4",
        ],
        {
            "method": "simclr",
            "max_samples": None,
            "knn": False,
            "resume": True,
            "devices": "auto",
            "method_kwargs": {"temperature": 0.2},
            "backbone_kwargs": {"img_size": 32, "patch_size": 4},
        },
    ),
    (("pretrain",), ["--precision", "fp16", "--max-samples", "50"], {"precision": "fp16", "max_samples": 50}),
    (
        ("hyper", "fit"),
        [
            "--zoo",
            "Z",
            "--no-permute",
            "--zoo-epochs",
            "15,20",
            "--precision",
            "32-true",
            "--d-model",
            "64",
            "--layers",
            "2",
            "--latent-dim",
            "16",
        ],
        {
            "augment.permute": False,
            "zoo_epochs": [15, 20],
            "precision": "fp32",
            "model.d_model": 64,
            "model.n_heads": 2,
            "model.enc_layers": 2,
            "model.dec_layers": 2,
            "model.proj_dim": 16,
        },
    ),
    (
        ("hyper", "fit"),
        ["--zoo", "Z", "--align", "--no-token-stats"],
        # precision auto (issue 25): bf16 on CPUs with AMX/AVX512-BF16; the suite pins auto to fp32 (conftest)
        {"augment.permute": False, "augment.align": True, "model.token_stats": False, "precision": "fp32"},
    ),
    (
        ("zoo", "build"),
        ["--precision", "bf16-mixed", "--engine", "torch", "--epochs", "3", "--chunk-size", "4"],
        {"options.precision": "bf16", "options.engine": "torch", "epochs": 3, "chunk_size": 4},
    ),
    (
        ("zoo", "build"),
        [],
        {"options.precision": "auto", "epochs": 10, "dataset": "digits", "arch": "cnn_digits"},
    ),
    (
        ("study", "label-efficiency"),
        ["--config", "Y", "--seed", "3", "--data", "simeo"],
        {"seed": 3, "data.data": "simeo", "name": "CLI study"},
    ),
    (("study", "label-efficiency"), ["--config", "Y", "--quick"], {"seed": 0, "data.size": 32}),
    (("demo",), ["--full", "--data", "simeo", "--seed", "2"], {"full": True, "seed": 2, "data": "simeo"}),
    (("experiment", "fusion"), ["--seeds", "3,4", "--quick"], {"s.seeds": (3, 4), "s.smoke": True}),
    (("experiment", "weak-supervision"), [], {"s.smoke": False}),
    (
        ("hyper", "evaluate"),
        ["--zoo", "Z", "--rep", "R", "--early-epoch", "2", "--quick"],
        {"early_epoch": 2, "max_rows": 500, "smoke": True},
    ),
    (
        ("hyper", "evaluate"),
        ["--zoo", "Z", "--rep", "R", "--max-rows", "300", "--quick"],
        {"early_epoch": None, "max_rows": 300},
    ),
    (
        ("hyper", "sample"),
        [
            "--zoo",
            "Z",
            "--rep",
            "R",
            "--epochs",
            "0,2",
            "--top-k",
            "5",
            "--transfer",
            "digits",
            "--bandwidth-scale",
            "0.5",
            "--quick",
        ],
        {
            "epochs": [0, 2],
            "top_k": 5,
            "n": 4,
            "transfer": "digits",
            "bandwidth_scale": 0.5,
            "smoke": True,
            "activation": None,
        },
    ),
    (("hyper", "demo"), ["--epochs", "3", "--quick"], {"epochs": 3, "quick": True}),
    (
        ("data", "generate"),
        ["--n", "10", "--power-plants", "3", "--patch-size", "16", "--scenes", "1"],
        {"n": 10, "power_plants": 3, "scenes": 1, "params.patch_size": 16},
    ),
    (
        ("data", "inspect"),
        ["Z", "--max-samples", "5", "--include-snow-cloud", "--split-ratios", "0.8,0.1,0.1"],
        {"max_samples": 5, "include_snow_cloud": True, "split_ratios": (0.8, 0.1, 0.1)},
    ),
    (("zoo", "inspect"), ["Z", "--no-verify"], {"verify": False}),
    (
        ("zoo", "prune"),
        ["Z", "--sparsity", "0,0.5", "--epochs", "1,2"],
        {"sparsities": [0.0, 0.5], "epochs": [1, 2]},
    ),
    (
        ("zoo", "prune"),
        ["Z"],
        {"sparsities": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], "epochs": None},
    ),
]


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize("words, argv, expected", OLD_COMMAND_LINES,
                         ids=[f"{' '.join(w)}-{i}" for i, (w, _, _) in enumerate(OLD_COMMAND_LINES)])
def test_old_command_lines_parse_to_the_same_config(words, argv, expected, monkeypatch, tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text("name: CLI study\ndata: {data: simeo, task: classify, modalities: [s2]}\n"
                     "methods: [{name: random-init, backbone: random, arch: cnn-tiny}]\nprotocols: [knn]\n")
    (tmp_path / "zoo").mkdir()
    argv = [{"Z": str(tmp_path / "zoo"), "R": str(tmp_path / "rep"), "Y": str(study)}.get(a, a) for a in argv]
    has_out = any("--out" in p.opts for p in _command(words).params)
    cfg = _config(monkeypatch, words, [*argv, *(["--out", str(tmp_path / "o")] if has_out else [])])
    for path, value in expected.items():
        assert _get(cfg, path) == value, path


def test_evaluate_old_command_line_builds_the_same_study(monkeypatch, tmp_path):
    cfg = _config(
        monkeypatch,
        ("evaluate",),
        [
            "--protocol",
            "knn,linear",
            "--fractions",
            "0.1,1.0",
            "--size",
            "0",
            "--task",
            "multi",
            "--k",
            "5",
            "--epochs",
            "4",
            "--modalities",
            "s2",
            "--baselines",
            "--out",
            str(tmp_path / "o"),
        ],
    )
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


@pytest.mark.parametrize(
    "argv, words",
    [
        (["zoo", "build", "--precision", "fp16"], ["fp16", "auto, bf16, fp32"]),
        (["hyper", "fit", "--zoo", "Z", "--precision", "16-mixed"], ["16-mixed"]),
        (["fit", "--precision", "fp8"], ["fp8"]),
        (["fit", "--task", "mlabel"], ["mlabel"]),
    ],
)
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

    cfg = StudyConfig(
        name="t",
        data={"data": "simeo", "task": "multi", "modalities": ["s2"]},
        methods=[{"name": "random-init", "backbone": "random", "arch": "cnn-tiny"}],
        protocols=["knn"],
    )
    assert cfg.data.task == "multilabel"


def test_building_the_cli_imports_no_torch():
    """The options come from the config classes at start-up: reading them must stay cheap
    (``eoreps --help``)."""
    import subprocess
    import sys

    code = "import sys, eoreps.cli; print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def _one_error_line(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_converted_commands_name_the_field_in_python_and_the_flag_on_the_command_line(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"^sparsity=1.5 must be in \[0, 1\]"):
        PruneOptions(sparsity=[0.5, 1.5])
    (tmp_path / "zoo").mkdir()
    assert "--sparsity 1.5 must be in [0, 1]" in _one_error_line(
        ["zoo", "prune", str(tmp_path / "zoo"), "--sparsity", "0,1.5", "--out", str(tmp_path / "o")], capsys)
    with pytest.raises(ConfigError, match=r"^bandwidth_scale=0 must lie in \(0, 10\]"):
        SampleConfig(zoo=tmp_path, rep=tmp_path, bandwidth_scale=0)
    assert "--bandwidth-scale 0.0 must lie in (0, 10]" in _one_error_line(
        ["hyper", "sample", "--zoo", str(tmp_path), "--rep", str(tmp_path), "--bandwidth-scale", "0"], capsys)
    line = _one_error_line(["data", "generate", "--n", "0", "--out", str(tmp_path / "s")], capsys)
    assert "--n 0: nothing to generate" in line and "--power-plants N" in line
    with pytest.raises(ConfigError, match=r"^max_samples=-1: must be >= 0"):
        DataInspectOptions(max_samples=-1)
    assert "--max-samples -1: must be >= 0" in _one_error_line(
        ["data", "inspect", str(tmp_path), "--max-samples", "-1"], capsys
    )


def test_flags_in_errors_maps_shared_options_switches_and_library_names():
    from eoreps.cli_config import flags_in_errors
    from eoreps.errors import DataError

    shared = {"skip_nodata": "--skip-nodata", "mask_classes": "--mask-classes"}
    want = r"^f: pass --skip-nodata; --mask-classes 'a'; --erase 2 must; --lr 1; zz=1 in /o/lr=2$"
    with pytest.raises(DataError, match=want):
        with flags_in_errors(FitOptions, shared):  # erase_prob: AugmentConfig's name of FitOptions.erase
            raise DataError("f: pass skip_nodata=True; mask_classes='a'; erase_prob=2 must; lr=1; "
                            "zz=1 in /o/lr=2")
