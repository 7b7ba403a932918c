"""``benchmarks/zoo_throughput.py --quick``: the native kernel timed at the lane-group widths asked for, each
compiled for its width, and no bf16 limit claimed on a CPU without native bf16."""

from __future__ import annotations

import json
import sys

import pytest

from eoreps.zoo import native

needs_native = pytest.mark.skipif(not native.available(), reason="no C++ compiler")


@needs_native
def test_quick_run_times_each_lane_width(bench_script, monkeypatch, capsys, tmp_path):
    bench = bench_script("zoo_throughput")
    real = bench.cpu_summary
    monkeypatch.setattr(bench, "cpu_summary", lambda: {**real(), "flags": ["avx2", "fma"]})  # no native bf16
    compiled: list[int] = []  # the lane width of every kernel the rows load
    load = native.load
    monkeypatch.setattr(native, "load",
                        lambda arch, prec="fp32": compiled.append(native.LANES) or load(arch, prec))
    monkeypatch.setattr(sys, "argv", ["zoo_throughput.py", "--quick", "--skip-torch", "--lanes", "4,16",
                                      "--json", str(tmp_path / "z.json")])
    default = native.LANES
    monkeypatch.setattr(native, "LANES", default)  # restored after the test whatever main() leaves
    bench.main()
    out = json.loads((tmp_path / "z.json").read_text())
    rows = out["results"]
    for name in ("one_at_a_time", "native_per_model", "native_per_model_lanes4", "native_per_model_lanes16"):
        assert rows[name]["img_s"] > 0, name
    assert {4, 16, default} <= set(compiled) and native.LANES == default == out["lanes"]  # put back
    assert out["matmul_bf16_gflops"] is None and all(r["frac_bf16_peak"] is None for r in rows.values())
    assert "bf16 - (no native bf16 on this CPU)" in capsys.readouterr().out


def test_a_lane_width_it_cannot_build_is_refused(bench_script, monkeypatch):
    bench = bench_script("zoo_throughput")
    monkeypatch.setattr(sys, "argv", ["zoo_throughput.py", "--quick", "--skip-torch", "--lanes", "12"])
    with pytest.raises(SystemExit, match="--lanes 12: lane groups are 4, 8 or 16"):
        bench.main()
