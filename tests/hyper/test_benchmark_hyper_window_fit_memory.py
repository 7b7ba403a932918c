"""``benchmarks/hyper_window_fit_memory.py``: its peak-RSS reading, the ratios it reports and one child fit
(the measurement itself runs on two built zoos, benchmarks/results)."""

from __future__ import annotations

import resource


def test_peak_rss_is_read_from_the_kernel(bench_script):
    peak = bench_script("hyper_window_fit_memory").peak_rss_kib()
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert peak["vmhwm_kib"] > 10_000 and abs(peak["ru_maxrss_kib"] - ru) <= ru // 10


def test_summary_ratios_of_the_medians_and_the_flatness_verdict(bench_script):
    bench = bench_script("hyper_window_fit_memory")
    rows = [{"size": "narrow", "path": "memory", "vmhwm_kib": 1024},
            {"size": "narrow", "path": "stream", "vmhwm_kib": 800 * 1024},
            {"size": "narrow", "path": "stream", "vmhwm_kib": 900 * 1024},
            {"size": "narrow", "path": "stream", "vmhwm_kib": 700 * 1024},  # median 800 MiB
            {"size": "resnet18", "path": "memory", "vmhwm_kib": 4096},
            {"size": "resnet18", "path": "stream", "vmhwm_kib": 880 * 1024}]
    s = bench.summarise(rows)
    assert s == {"stream_large_over_small": 1.1, "memory_large_over_small": 4.0,
                 "stream_over_memory_large": 220.0, "flat_within_15pct": True,
                 "median_vmhwm_mib": {"narrow memory": 1, "narrow stream": 800, "resnet18 memory": 4,
                                      "resnet18 stream": 880}}
    rows[-1]["vmhwm_kib"] = 1000 * 1024
    assert not bench.summarise(rows)["flat_within_15pct"]


def test_one_child_fit_reports_its_zoo_and_peak(bench_script, tiny_zoo):
    row = bench_script("hyper_window_fit_memory").child(tiny_zoo, "stream", steps=1, batch_size=4, window=16)
    assert row["path"] == "stream" and row["steps"] == 1 and row["checkpoints"] == 48
    assert row["vmhwm_kib"] >= row["ru_maxrss_kib"] * 0.9 > 0
