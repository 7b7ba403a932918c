"""``benchmarks/stream_gpu.py``: utilisation sampling, the busy verdict, and one line without a GPU."""

from __future__ import annotations

import itertools
import time

import pytest


def test_sampler_keeps_only_the_timed_window(bench_script):
    mod = bench_script("stream_gpu")
    values = itertools.count()
    with mod.UtilizationSampler(query=lambda: float(next(values)), interval=0.01) as s:
        time.sleep(0.05)
        t0 = time.perf_counter()
        time.sleep(0.1)
        t1 = time.perf_counter()
        time.sleep(0.05)
    inside = s.between(t0, t1)
    assert 3 <= len(inside) < len(s.samples)
    assert inside == sorted(inside) and inside[0] > 0  # samples before t0 are left out
    with pytest.raises(ValueError, match="interval"):
        mod.UtilizationSampler(query=lambda: 0.0, interval=0)


def test_busy_summary_judges_the_mean(bench_script):
    mod = bench_script("stream_gpu")
    starved = mod.busy_summary([100.0, 100.0, 20.0, 20.0])
    assert starved["mean"] == 60.0 and starved["share_at_target"] == 0.5 and not starved["pass"]
    busy = mod.busy_summary([85.0, 95.0, 79.0])
    assert busy["pass"] and busy["median"] == 85.0
    with pytest.raises(SystemExit, match="no utilisation sample"):
        mod.busy_summary([])


def test_without_cuda_it_stops_with_one_line(bench_script, monkeypatch, capsys, tmp_path):
    import torch

    mod = bench_script("stream_gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as e:
        mod.measure(mod.parse(["--work", str(tmp_path)]))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CUDA device" in err[0] and "Traceback" not in err[0]
    assert not any(tmp_path.iterdir())  # nothing written before the check
