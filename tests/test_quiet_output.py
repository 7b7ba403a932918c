"""What a user sees from a quick run whose output goes to a log: no carriage-return bars, no library
warnings, a bounded number of lines, and the smoke-run mark on the numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def _run(*args: str) -> subprocess.CompletedProcess:
    """``eoreps ARGS`` with stderr a pipe (not a terminal) and the user's default settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("EOREPS_NO_PROGRESS", "EOREPS_VERBOSE", "PYTHONWARNINGS")
    }
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-m", "eoreps.cli", *args], capture_output=True, text=True, env=env,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert "\r" not in res.stderr and "\r" not in res.stdout  # plain lines, not bars
    assert "warning" not in res.stderr.lower() and "weights_only" not in res.stderr, res.stderr
    return res


def test_quick_fit_log_is_clean_and_marked(tmp_path):
    res = _run("fit", "--quick", "--out", str(tmp_path / "fit"))
    assert len(res.stderr.splitlines()) <= 25, res.stderr
    assert "(smoke run: 1 epoch(s), at most 64 training samples, not a measurement)" in res.stdout
    results = json.loads((tmp_path / "fit" / "results.json").read_text())
    assert results["smoke"] is True and "not a measurement" in results["smoke_note"]


def test_quick_pretrain_log_is_clean(tmp_path):
    res = _run("pretrain", "--quick", "--out", str(tmp_path / "p"))
    err = res.stderr
    assert "/-2" not in err and "Epoch 0" not in err  # a step budget is counted in steps
    # a cold pack cache adds the packing notice and its plain progress lines (at most one per 5 %) once
    packing = [ln for ln in err.splitlines() if ln.startswith(("eoreps: packing ", "pack "))]
    lines = [ln for ln in err.splitlines() if ln not in packing]
    assert len(packing) <= 22 and all(ln.startswith("train: ") and "/4 steps" in ln for ln in lines), err
    assert "(smoke run: 4 steps, not a measurement)" in res.stdout
    assert json.loads((tmp_path / "p" / "pretrain.json").read_text())["smoke"] is True
