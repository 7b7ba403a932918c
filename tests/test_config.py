"""Config loading: YAML into dataclasses, unknown keys are errors; --config on the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import typer
from typer.testing import CliRunner

from eoreps.commands.common import ConfigOpt, SeedOpt
from eoreps.config import load_dataclass, read_yaml, to_dict
from eoreps.errors import ConfigError


@dataclass
class Inner:
    width: int = 8


@dataclass
class Outer:
    lr: float = 0.1
    name: str = "a"
    inner: Inner = field(default_factory=Inner)


def test_load_dataclass_from_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("lr: 0.5\ninner:\n  width: 3\n")
    cfg = load_dataclass(Outer, p, name="b")
    assert cfg.lr == 0.5 and cfg.inner.width == 3 and cfg.name == "b"
    assert to_dict(cfg) == {"lr": 0.5, "name": "b", "inner": {"width": 3}}


def test_unknown_key_is_an_error_with_suggestion(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("lrr: 0.5\n")
    with pytest.raises(ConfigError, match="did you mean 'lr'"):
        load_dataclass(Outer, p)


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        read_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_yaml(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        read_yaml(lst)


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def run(seed: SeedOpt = 0, epochs: int = 3, config: ConfigOpt = None) -> None:
        typer.echo(f"seed={seed} epochs={epochs}")

    return app


def test_cli_config_fills_options_and_cli_wins(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("seed: 7\nepochs: 9\n")
    runner = CliRunner()
    r = runner.invoke(_app(), ["--config", str(p)])
    assert r.exit_code == 0 and "seed=7 epochs=9" in r.output
    r = runner.invoke(_app(), ["--config", str(p), "--epochs", "2"])
    assert "seed=7 epochs=2" in r.output


def test_cli_config_unknown_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("epoch: 9\n")
    r = CliRunner().invoke(_app(), ["--config", str(p)])
    assert r.exit_code != 0
    assert isinstance(r.exception, ConfigError) and "epochs" in str(r.exception)


def _typed_app() -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def run(seed: SeedOpt = 0, epochs: int = 3, lr: float = 0.1, modalities: str = "s2", quick: bool = False,
            config: ConfigOpt = None) -> None:
        typer.echo(f"seed={seed} epochs={epochs} lr={lr} modalities={modalities} quick={quick}")

    return app


@pytest.mark.parametrize("yaml_text, key", [("epochs: ten\n", "epochs"), ("lr: fast\n", "lr"),
                                            ("quick: maybe\n", "quick"), ("epochs: 1.5\n", "epochs"),
                                            ("seed: -1\n", "seed"), ("modalities: {s2: 1}\n", "modalities")])
def test_cli_config_bad_value_names_the_file_and_key(tmp_path, yaml_text, key):
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml_text)
    r = CliRunner().invoke(_typed_app(), ["--config", str(p)])
    assert isinstance(r.exception, ConfigError), r.output
    msg = str(r.exception)
    assert msg.startswith(f"{p}: key '{key}': ") and "\n" not in msg and "--" not in msg.split(":")[2]


def test_cli_config_values_are_converted_and_lists_join_for_comma_options(tmp_path):
    p = tmp_path / "cfg.yaml"
    p.write_text("epochs: '7'\nlr: 1e-3\nquick: yes\nmodalities: [s2, s1, dem]\n")
    r = CliRunner().invoke(_typed_app(), ["--config", str(p)])
    assert r.exit_code == 0, r.output
    assert "seed=0 epochs=7 lr=0.001 modalities=s2,s1,dem quick=True" in r.output


def test_fit_config_with_a_bad_type_is_one_line_naming_file_and_key(tmp_path, capsys):
    from eoreps.cli import main

    p = tmp_path / "cfg.yaml"
    p.write_text("epochs: ten\n")
    with pytest.raises(SystemExit) as e:
        main(["fit", "--config", str(p), "--out", str(tmp_path / "run")])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert e.value.code == 2 and len(err) == 1, err
    assert err[0].startswith(f"eoreps: error: {p}: key 'epochs': 'ten' is not a valid value")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "yaml_text, where",
    [
        ("lr: fast\n", "key 'lr': 'fast' is not a valid float"),
        ("name: [a]\n", "key 'name': ['a'] is not a valid str"),
        ("inner: {width: wide}\n", ".inner: key 'width': 'wide'"),
        ("inner: [8]\n", "key 'inner': [8] is not a valid Inner"),
        ("inner: {width: true}\n", "key 'width': True is not a valid int"),
    ],
)
def test_load_dataclass_names_file_and_key_of_a_bad_type(tmp_path, yaml_text, where):
    p = tmp_path / "c.yaml"
    p.write_text(yaml_text)
    with pytest.raises(ConfigError) as e:
        load_dataclass(Outer, p)
    assert str(e.value).startswith(str(p)) and where in str(e.value), str(e.value)


def test_load_dataclass_reads_yaml_exponents_as_floats(tmp_path):
    """YAML 1.1 reads ``1e-3`` (no dot) as a string; a float field takes it as the number it means."""
    p = tmp_path / "c.yaml"
    p.write_text("lr: 1e-3\ninner: {width: 4}\n")
    cfg = load_dataclass(Outer, p)
    assert cfg.lr == 0.001 and isinstance(cfg.lr, float) and cfg.inner.width == 4
