"""The eoreps command: help everywhere, one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer.main

from eoreps.cli import app, main


def _all_commands(group, prefix: tuple[str, ...] = ()):
    yield prefix
    if hasattr(group, "commands"):
        for name, cmd in group.commands.items():
            yield from _all_commands(cmd, (*prefix, name))


def test_every_subcommand_has_help(capsys):
    root = typer.main.get_command(app)
    paths = list(_all_commands(root))
    assert ("data", "inspect") in paths and ("demo",) in paths
    for path in paths:
        with pytest.raises(SystemExit) as e:
            main([*path, "--help"])
        assert e.value.code == 0, path
        out = capsys.readouterr().out
        assert "Usage" in out, path


def test_user_error_is_one_line_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "eoreps.cli", "data", "inspect", str(tmp_path / "missing")],
                       capture_output=True, text=True)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "missing" in lines[0], r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "args, words",
    [
        (["--target", "sorted"], "canonical, view"),
        (["--erase", "1.5"], "--erase"),
        (["--align", "--target", "canonical"], "--align"),
        (["--zoo-epochs", "last"], "--zoo-epochs"),
        (["--functional", "-1"], "--functional"),
        (["--functional", "nan"], "--functional"),
        (["--functional", "1", "--functional-images", "0"], "--functional-images"),
        (["--tokenizer", "sane"], "--tokenizer 'sane' must be one of neuron, window"),
        (["--tokenizer", "window", "--token-width", "0"], "--token-width 0"),
        (["--tokenizer", "window", "--functional", "0.1"], "--tokenizer 'neuron'"),
    ],
)
def test_bad_hyper_fit_option_is_one_line_exit_2(tmp_path, capsys, args, words):
    with pytest.raises(SystemExit) as e:
        main(["hyper", "fit", "--zoo", str(tmp_path / "zoo"), "--out", str(tmp_path / "rep"), *args])
    assert e.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and words in err[0], err


@pytest.mark.parametrize("command", ["evaluate", "sample"])
def test_hyper_evaluate_and_sample_take_threads(tmp_path, capsys, command):
    """--threads is accepted like in 'hyper fit'; the missing zoo is then what the one-line error names."""
    with pytest.raises(SystemExit) as e:
        main(
            [
                "hyper",
                command,
                "--zoo",
                str(tmp_path / "nozoo"),
                "--rep",
                str(tmp_path / "norep"),
                "--threads",
                "1",
            ]
        )
    assert e.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "No such option" not in err[0] and ("nozoo" in err[0] or "norep" in err[0]), err
