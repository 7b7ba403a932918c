"""Experiments in --quick mode write their CSV, markdown (marked synthetic) and figure; `eoreps fit` runs."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from eoreps.cli import app


def _check(out, name: str) -> None:
    for f in ("results.csv", "summary.csv", "summary.md", f"{name}.png", "report.html"):
        assert (out / f).is_file(), f
    md = (out / "summary.md").read_text()
    assert "synthetic" in md and "Published" in md
    assert len(pd.read_csv(out / "results.csv")) > 0
    # every caller runs the quick settings: a smoke run, said in the markdown and the report
    assert "(smoke run: 1 seed, " in md and "not a measurement" in md
    assert "(smoke run: 1 seed" in (out / "report.html").read_text(encoding="utf-8")


def test_fusion_quick(tmp_path) -> None:
    from eoreps.tasks.experiments import FusionSettings, run_fusion

    df, _ = run_fusion(tmp_path, FusionSettings.quick())
    _check(tmp_path, "fusion")
    assert set(df["fusion"]) == {"single", "early", "late"}
    assert df[["acc", "f1", "miou"]].notna().all().all()
    # resumable: a second call reuses every finished run
    before = {p: p.stat().st_mtime for p in tmp_path.glob("runs/*/*/rows.json")}
    run_fusion(tmp_path, FusionSettings.quick())
    assert {p: p.stat().st_mtime for p in tmp_path.glob("runs/*/*/rows.json")} == before


def test_multitask_quick(tmp_path) -> None:
    from eoreps.tasks.experiments import MultitaskSettings, run_multitask

    df, _ = run_multitask(tmp_path, MultitaskSettings.quick())
    _check(tmp_path, "multitask")
    row = df[df["setting"] == "GradNorm (Chen)"].iloc[0]
    assert all(pd.notna(row[c]) for c in ("plume/iou", "power/mae", "power/r2", "fuel/acc"))
    single = df[df["setting"] == "single task: power"].iloc[0]
    assert pd.isna(single.get("fuel/acc")) and pd.notna(single["power/mae"])


def test_uncertainty_quick(tmp_path) -> None:
    from eoreps.tasks.experiments import UncertaintySettings, run_uncertainty

    df, _ = run_uncertainty(tmp_path, UncertaintySettings.quick())
    _check(tmp_path, "uncertainty")
    assert (tmp_path / "calibration.png").is_file()
    assert set(df["row"]) == {"plain model", "MC dropout", "MC dropout + filter"}
    assert set(df["split"]) == {"test", "shifted"}
    for split in ("test", "shifted"):
        sub = df[df["split"] == split].set_index("row")
        assert (
            sub.loc["MC dropout + filter", "n"] <= sub.loc["MC dropout", "n"] == sub.loc["plain model", "n"]
        )


def test_fit_cli_quick_bf16_with_yaml(tmp_path) -> None:
    from eoreps.cli import main

    cfg = tmp_path / "fit.yaml"
    cfg.write_text("task: classify\nmodalities: s2,s1,season\nfusion: early\nprecision: 32-true\n")
    with pytest.raises(SystemExit) as e:
        main(["fit", "--config", str(cfg), "--fusion", "late", "--quick", "--precision", "bf16-mixed",
              "--out", str(tmp_path)])
    assert e.value.code == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["config"]["precision"] == "bf16" and res["config"]["fusion"] == "late"  # the CLI wins
    assert res["config"]["modalities"] == ["s2", "s1", "season"]
    assert "classify/acc" in res["metrics"]["test"]
    assert (tmp_path / "logs" / "metrics.csv").is_file()
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_fit_cli_errors(tmp_path, capsys) -> None:
    from eoreps.cli import main

    with pytest.raises(SystemExit) as e:
        main(["fit", "--task", "clasify", "--out", str(tmp_path)])
    assert e.value.code == 2 and "unknown task 'clasify'" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["fusion", "multitask", "uncertainty", "weak-supervision"])
def test_experiment_commands_are_registered_with_their_options(name) -> None:
    from typer.testing import CliRunner

    res = CliRunner().invoke(app, ["experiment", name, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert all(flag in res.output for flag in ("--seeds", "--quick", "--out", "--threads", "--config")), (
        res.output
    )


@pytest.mark.realdata
def test_fit_on_real_bigearthnet_pairs(shared_data, tmp_path) -> None:
    """Smoke test: multi-label S1+S2 late fusion on the real BigEarthNet pairs."""
    from eoreps.cli import main

    data = shared_data / "bigearthnet" / "ben_s1s2_real.npz"
    with pytest.raises(SystemExit) as e:
        main(["fit", "--task", "multilabel", "--modalities", "s2,s1", "--fusion", "late", "--data", str(data),
              "--quick", "--out", str(tmp_path)])
    assert e.value.code == 0
    m = json.loads((tmp_path / "results.json").read_text())["metrics"]["test"]
    assert m["n"] == 18 and 0 <= m["multilabel/f1_micro"] <= 1
