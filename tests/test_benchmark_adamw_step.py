"""``benchmarks/adamw_step.py``: times the three AdamW implementations on the same parameters."""

from __future__ import annotations

import json
import sys

import torch


def test_time_steps_times_each_implementation_and_updates_the_parameters(bench_script):
    bench = bench_script("adamw_step")
    params = [torch.nn.Parameter(torch.zeros(8, 4)), torch.nn.Parameter(torch.zeros(8))]
    ms = bench.time_steps(params, repeats=2, warmup=1)
    assert set(ms) == {"loop", "foreach", "fused"} and all(v > 0 for v in ms.values())
    assert all(float(p.abs().max()) > 0 for p in params)  # the steps ran on them


def test_main_writes_one_row_per_parameter_set(bench_script, monkeypatch, tmp_path):
    bench = bench_script("adamw_step")
    out = tmp_path / "r.json"
    argv = ["adamw_step.py", "--threads", "1", "--repeats", "1", "--json", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    rows = json.loads(out.read_text())["rows"]
    assert [r["params"] for r in rows] == ["resnet18", "window-autoencoder"]
    assert rows[0]["n_params"] > 11_000_000 and rows[1]["n_tensors"] > 20
    assert all(r["eoreps_adamw_fused"] and r["vs_loop"]["loop"] == 1.0 for r in rows)


def test_an_output_it_cannot_write_is_one_line_before_any_timing(tmp_path, bench_fails):
    (tmp_path / "afile").write_text("")
    line, out = bench_fails("adamw_step", "--json", str(tmp_path / "afile" / "x.json"))
    assert "afile" in line and "--json" in line and not out  # nothing was timed
