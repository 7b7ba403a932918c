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
