"""A resumed run keeps the precision it started with (issue 25 review): ``--precision auto`` takes over
the stored choice, whatever the first run asked, and an explicit other choice is refused with one line."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch

from eoreps import precision as P
from eoreps import precision_probe as PP
from eoreps.errors import ConfigError


@pytest.fixture
def amx(monkeypatch, tmp_path):
    """An AMX CPU (no suite override) where every timing says bf16 is 2x faster; returns the call count."""
    monkeypatch.delenv(P.ENV, raising=False)
    monkeypatch.setattr(P, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(PP, "cache_root", lambda: tmp_path / "cache")
    calls: list[PP.Workload] = []
    monkeypatch.setattr(PP, "time_workload", lambda w: (calls.append(w), (1.0, 0.5))[1])
    monkeypatch.setattr(P, "_ANNOUNCED", set())
    return calls


@dataclass
class Cfg:
    precision: str = "auto"


def _cfg(precision: str) -> Cfg:
    cfg = Cfg(precision)
    cfg.precision = P.resolve_config(cfg, ("auto", "fp32", "bf16"))
    return cfg


def _work() -> PP.Workload:
    return PP.Workload([(torch.nn.Linear(2, 2), torch.zeros(1, 2))], "linear")


def test_settle_run_stores_the_choice_and_a_resume_keeps_it(amx, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    first = PP.settle_run(_cfg("fp32"), run, False, _work)  # explicit fp32 on a CPU where bf16 is faster
    assert json.loads((run / PP.RUN_FILE).read_text()) == {**first, "asked": "fp32"}
    cfg = _cfg("auto")
    assert PP.settle_run(cfg, run, True, _work) == first and cfg.precision == "fp32"
    assert P.requested(cfg) == "auto" and amx == []  # not timed: the run keeps fp32
    with pytest.raises(ConfigError, match=f"{run}: trained in fp32; a resume cannot switch to bf16"):
        PP.settle_run(_cfg("bf16"), run, True, _work)
    assert PP.settle_run(_cfg("auto"), run, False, _work)["precision"] == "bf16"  # a fresh run times
    legacy = tmp_path / "legacy"  # a run folder from before precision.json: the plan's precision
    legacy.mkdir()
    assert PP.settle_run(_cfg("auto"), legacy, True, _work, previous="fp32")["precision"] == "fp32"


def _cli(args: list[str], capsys) -> tuple[int, str]:
    from eoreps.cli import main

    with pytest.raises(SystemExit) as e:
        main(args)
    return e.value.code or 0, capsys.readouterr().err


def _one_line_error(code: int, err: str, folder) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err and str(folder) in lines[0]


def test_a_resumed_pretrain_keeps_its_precision(amx, tmp_path, capsys):
    out = tmp_path / "pre"
    base = ["pretrain", "--quick", "--method", "simclr", "--backbone", "cnn-tiny", "--modalities", "s2",
            "--loader", "memory", "--no-knn", "--max-samples", "64", "--batch-size", "16", "--out", str(out)]
    assert _cli([*base, "--precision", "fp32"], capsys)[0] == 0
    assert _cli([*base, "--resume"], capsys)[0] == 0  # default auto: stays fp32, nothing timed
    rec = json.loads((out / "pretrain.json").read_text())
    assert rec["precision"]["precision"] == rec["config"]["precision"] == "fp32" and amx == []
    _one_line_error(*_cli([*base, "--resume", "--precision", "bf16"], capsys), out)


def test_a_resumed_fit_keeps_its_precision_and_devices_auto_measures(amx, tmp_path, capsys):
    out = tmp_path / "fit"
    assert _cli(["fit", "--quick", "--precision", "fp32", "--out", str(out)], capsys)[0] == 0
    assert _cli(["fit", "--quick", "--epochs", "2", "--out", str(out)], capsys)[0] == 0  # resumes on auto
    res = json.loads((out / "results.json").read_text())
    assert res["precision"]["precision"] == res["config"]["precision"] == "fp32" and amx == []
    _one_line_error(*_cli(["fit", "--quick", "--epochs", "3", "--precision", "bf16", "--out", str(out)],
                          capsys), out)
    other = tmp_path / "auto-devices"  # devices=auto on the CPU is one process: timed like devices=1
    assert _cli(["fit", "--quick", "--devices", "auto", "--out", str(other)], capsys)[0] == 0
    res = json.loads((other / "results.json").read_text())
    assert res["precision"]["precision"] == "bf16" and "measured 2.000x" in res["precision"]["reason"]
    assert len(amx) == 1


def test_experiment_runs_keep_auto_as_asked(amx, tmp_path, monkeypatch):
    """``dataclasses.replace`` re-resolves a config's precision: each experiment run must still see "auto"
    (and time its model), unless the variant sets the precision."""
    from types import SimpleNamespace

    from eoreps.tasks.experiments import runner
    from eoreps.tasks.fit import FitConfig

    asked: list[str] = []
    monkeypatch.setattr(runner, "fit", lambda cfg, quiet: (asked.append(P.requested(cfg)),
                                                           SimpleNamespace(epochs=0, metrics={}))[1])
    variants = [runner.Variant({"v": "a"}), runner.Variant({"v": "b"}, {"precision": "fp32"})]
    runner.run_grid(FitConfig(), variants, [0], tmp_path, rows_fn=lambda result, variant: [])
    assert asked == ["auto", "fp32"]


def test_a_conflicting_explicit_resume_is_refused_before_settling(amx, tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    PP.settle_run(_cfg("fp32"), run, False, _work)
    settled: list[object] = []
    real = PP.settle
    monkeypatch.setattr(PP, "settle", lambda cfg, *a, **k: (settled.append(cfg), real(cfg, *a, **k))[1])
    with pytest.raises(ConfigError) as e:
        PP.settle_run(_cfg("bf16"), run, True, _work)
    assert settled == [] and amx == []  # nothing resolved: no workload built, nothing timed
    assert str(e.value) == (f"{run}: trained in fp32; a resume cannot switch to bf16 mid-run: resume with "
                            "--precision fp32 (or auto), or use another output folder")
    assert "\n" not in str(e.value)
    assert PP.settle_run(_cfg("fp32"), run, True, _work)["precision"] == "fp32" and len(settled) == 1
