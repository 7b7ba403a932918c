"""``eoreps evaluate`` and ``eoreps study label-efficiency`` end to end on a tiny SimEO folder."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from eoreps.cli import main


@pytest.fixture(scope="module")
def simeo_folder(tmp_path_factory):
    from eoreps.data.simeo import write_simeo

    return write_simeo(tmp_path_factory.mktemp("simeo") / "tiny", n=120, seed=3)


def test_study_command_runs_and_resumes(simeo_folder, tmp_path, capsys) -> None:
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({
        "name": "CLI study",
        "data": {"data": str(simeo_folder), "task": "classify", "modalities": ["s2", "s1"]},
        "methods": [{"name": "random-init", "backbone": "random", "arch": "cnn-tiny", "fusion": "late"}],
        "protocols": ["knn", "linear"], "fractions": [0.5, 1.0], "seeds": 1,
    }))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        main(["study", "label-efficiency", "--config", str(study), "--out", str(out), "--quick"])
    assert e.value.code == 0
    df = pd.read_csv(out / "results.csv")
    assert sorted(df["protocol"].unique()) == ["knn", "linear"] and len(df) == 4 and df["synthetic"].all()
    md = (out / "tables.md").read_text()
    assert "Synthetic data" in md and "AA" in md and "OA" in md and "forest" in md
    assert (out / "label_efficiency.png").is_file() and (out / "report.html").is_file()
    # a --quick study is a smoke run: tables, report and study.json say so
    assert "(smoke run: 1 seed, at most 400 training samples, not a measurement)" in md
    assert "(smoke run: 1 seed" in (out / "report.html").read_text(encoding="utf-8")
    assert json.loads((out / "study.json").read_text())["smoke"] is True
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}
    with pytest.raises(SystemExit):
        main(["study", "label-efficiency", "--config", str(study), "--out", str(out), "--quick"])
    assert {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")} == stamps


def test_evaluate_command(simeo_folder, tmp_path, capsys) -> None:
    out = tmp_path / "eval"
    with pytest.raises(SystemExit) as e:
        main(
            [
                "evaluate",
                "--backbone",
                "random",
                "--arch",
                "cnn-tiny",
                "--protocol",
                "knn",
                "--fractions",
                "1.0",
                "--seeds",
                "1",
                "--modalities",
                "s2",
                "--data",
                str(simeo_folder),
                "--out",
                str(out),
                "--quick",
            ]
        )
    assert e.value.code == 0
    printed = capsys.readouterr().out
    assert "random-init" in printed and "(smoke run: 1 seed" in printed
    assert len(pd.read_csv(out / "results.csv")) == 1


def test_bad_study_file_is_a_one_line_error(tmp_path, capsys) -> None:
    study = tmp_path / "bad.yaml"
    study.write_text("methods: [{name: x, backbone: random}]\nprotocol: [linear]\n")
    with pytest.raises(SystemExit) as e:
        main(["study", "label-efficiency", "--config", str(study), "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "protocol" in err and "Traceback" not in err
