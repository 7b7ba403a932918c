"""A killed study resumes without recomputing finished cells."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from eval_toy import toy_data

from eoreps.evaluation.encoders import MethodSpec
from eoreps.evaluation.study import StudyConfig, collect, run_study


class Killed(Exception):
    """Stands in for a kill arriving between two cells."""


def _cfg() -> StudyConfig:
    return StudyConfig(methods=[MethodSpec("rand", backbone="random", arch="cnn-tiny")],
                       protocols=["knn", "linear"], fractions=[0.2, 1.0], seeds=2)


def test_interrupted_study_resumes_without_recomputing(tmp_path: Path) -> None:
    data = toy_data("classify", n_train=60, n_eval=30)
    cfg = _cfg()
    started: list[str] = []

    def die_after_three(cell) -> None:
        if len(started) == 3:
            raise Killed
        started.append(cell.key)

    with pytest.raises(Killed):
        run_study(cfg, tmp_path, data=data, on_cell=die_after_three)
    done = sorted((tmp_path / "cells").glob("*.json"))
    assert [p.stem for p in done] == sorted(started)
    mtimes = {p.name: p.stat().st_mtime_ns for p in done}

    resumed: list[str] = []
    report = run_study(cfg, tmp_path, data=data, on_cell=lambda c: resumed.append(c.key))
    assert len(resumed) == 8 - 3
    assert not set(resumed) & set(started), "finished cells must not run again"
    assert {p.name: p.stat().st_mtime_ns for p in done} == mtimes
    assert (
        report.is_file() and (tmp_path / "results.parquet").is_file() and (tmp_path / "results.csv").is_file()
    )
    assert len(collect(tmp_path)) == 8

    again: list[str] = []
    run_study(cfg, tmp_path, data=data, on_cell=lambda c: again.append(c.key))
    assert again == []

    cfg.options.knn.k = 3  # a changed setting invalidates exactly the cells it affects
    changed: list[str] = []
    run_study(cfg, tmp_path, data=data, on_cell=lambda c: changed.append(c.key))
    assert len(changed) == 4 and all("__knn__" in k for k in changed)


_SCRIPT = """
import sys, torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
from eval_toy import toy_data
from test_study_resume import _cfg
from eoreps.evaluation.study import run_study
run_study(_cfg(), {out!r}, data=toy_data("classify", n_train=60, n_eval=30))
"""


@pytest.mark.slow
def test_sigkilled_study_resumes(tmp_path: Path) -> None:
    """A real SIGKILL of the study process after its first cell file appears."""
    out = tmp_path / "study"
    script = _SCRIPT.format(tests=str(Path(__file__).resolve().parent), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "EOREPS_NO_PROGRESS": "1"})
    deadline = time.time() + 600
    while time.time() < deadline and not list((out / "cells").glob("*.json")):
        time.sleep(0.05)
        assert proc.poll() is None, "the study ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}
    assert 1 <= len(done) < 8
    # a kill during a write can leave a hidden ".<name>.*.tmp" file: it is never read as a result
    resumed: list[str] = []
    run_study(
        _cfg(), out, data=toy_data("classify", n_train=60, n_eval=30), on_cell=lambda c: resumed.append(c.key)
    )
    assert len(resumed) == 8 - len(done)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json") if p.name in done} == done
