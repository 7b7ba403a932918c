"""``benchmarks/ssl_throughput.py --quick``: every fp32 contender runs and the table reports each, with the
limit (fused AdamW, as eoreps trains) and the limit with torch's default AdamW loop side by side; the streamed
contender reads the pack; the rotation and the paired ratios against hand-made runs."""

from __future__ import annotations

import re
import sys

import pytest

from eoreps.ssl.pretrain import GRADIENT_CLIP


def test_quick_run_reports_every_contender(bench_script, monkeypatch, capsys, tmp_path):
    import eoreps.optim
    import eoreps.ssl.methods.base as base

    bench = bench_script("ssl_throughput")
    built: list[bool] = []  # fused flag of every AdamW the eoreps runs build
    real = eoreps.optim.adamw

    def recording(params, **kw):
        opt = real(params, **kw)
        built.append(bool(opt.defaults["fused"]))
        return opt

    monkeypatch.setattr(eoreps.optim, "adamw", recording)
    clips: list[float | None] = []  # gradient clipping of every Lightning trainer the script builds
    real_trainer = bench._trainer
    monkeypatch.setattr(bench, "_trainer",
                        lambda *a, **k: clips.append(k.get("clip")) or real_trainer(*a, **k))
    streamed: list[int] = []  # batch sizes the streamed contender's loader was asked for
    real_stream_of = bench.stream_of

    def stream_of(*a):
        stream = real_stream_of(*a)
        loader = stream.loader
        stream.loader = lambda batch_size, workers: streamed.append(batch_size) or loader(batch_size, workers)
        return stream

    monkeypatch.setattr(bench, "stream_of", stream_of)
    # eoreps-auto is left out: on a CPU with bf16 it would also time a precision probe
    only = "limit,limit-loop,plain,eoreps,eoreps-loop,eoreps-stream"
    monkeypatch.setattr(sys, "argv", ["ssl_throughput.py", "--quick", "--threads", "1", "--only", only,
                                      "--out", str(tmp_path / "r.json")])
    bench.main()
    out = capsys.readouterr().out
    table = out[out.index("contender"):]
    for name in only.split(","):
        row = re.search(rf"^{re.escape(name)}\s+([0-9.]+)\s", table, re.M)
        assert row and float(row.group(1)) > 0, (name, table)
    assert not (tmp_path / "r.json").exists()  # --quick writes no JSON
    # the limit and eoreps: fused; eoreps-loop: the default loop (limit-loop builds its own)
    assert built == [True, True, False, True], built
    assert clips == [GRADIENT_CLIP] * 3 == [3.0] * 3  # the eoreps runs clip as eoreps pretrain
    assert streamed == [16]  # eoreps-stream trained from the pack's LitData loader (--quick: batch 16)
    assert base.adamw is real  # each run puts back the optimizer it found


def test_an_out_it_cannot_write_is_one_line_before_any_run(tmp_path, bench_fails):
    (tmp_path / "afile").write_text("")
    line, out = bench_fails("ssl_throughput", "--out", str(tmp_path / "afile" / "r.json"))
    assert "afile" in line and "--out" in line and "pairs/s" not in out


def test_each_repeat_rotates_the_order(bench_script):
    rotated = bench_script("ssl_throughput").rotated
    order = ["a", "b", "c"]
    assert [rotated(order, r) for r in range(4)] == [
        ["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]
    assert rotated([], 3) == []


def test_paired_ratios_cancel_a_drift_the_ratio_of_medians_keeps(bench_script):
    ratios = bench_script("ssl_throughput").ratios
    # the machine slows down repeat by repeat; eoreps is 0.95x the limit and 1.1x plain in every repeat,
    # torchgeo is 0.9x plain; eoreps-bf16 is 1.5x limit-bf16
    speed = [100.0, 80.0, 60.0]
    runs = {"limit": [s for s in speed], "plain": [s * 0.8 for s in speed],
            "torchgeo": [s * 0.72 for s in speed], "eoreps": [s * 0.95 for s in speed],
            "limit-bf16": [50.0, 50.0, 50.0], "eoreps-bf16": [75.0, 75.0, 75.0]}
    t = ratios(runs, {"limit-bf16", "eoreps-bf16"})
    assert t["eoreps"]["paired_vs_limit"] == pytest.approx(0.95)
    assert t["eoreps"]["paired_vs_best_anchor"] == pytest.approx(0.95 / 0.8)
    assert t["torchgeo"]["paired_vs_best_anchor"] == pytest.approx(0.9)
    assert t["eoreps-bf16"]["paired_vs_limit"] == pytest.approx(1.5)  # against the bf16 limit
    assert t["eoreps-bf16"]["vs_limit"] == pytest.approx(1.5)
    # the machine's speed jumps between repeats (100, 60, 90) and one eoreps run hits a slow spell: the
    # ratio of medians reads 60 / 90, the paired ratio the 0.95x of the two undisturbed repeats
    runs["limit"] = [100.0, 60.0, 90.0]
    runs["eoreps"] = [95.0, 57.0, 60.0]
    t = ratios(runs, set())
    assert t["eoreps"]["paired_vs_limit"] == pytest.approx(0.95)
    assert t["eoreps"]["vs_limit"] == pytest.approx(60.0 / 90.0)
    # a reference not run: None, not a made-up ratio
    t = ratios({"eoreps": [1.0, 2.0]}, set())
    assert t["eoreps"] == {"vs_best_anchor": None, "vs_limit": None, "paired_vs_best_anchor": None,
                           "paired_vs_limit": None}
