"""``benchmarks/ssl_throughput.py --quick``: every fp32 contender runs and the table reports each, with the
limit (fused AdamW, as eoreps trains) and the limit with torch's default AdamW loop side by side."""

from __future__ import annotations

import re
import sys

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
    # eoreps-auto is left out: on a CPU with bf16 it would also time a precision probe
    only = "limit,limit-loop,plain,eoreps,eoreps-loop"
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
    assert built == [True, True, False], built
    assert clips == [GRADIENT_CLIP] * 2 == [3.0] * 2  # both eoreps runs clip as eoreps pretrain
    assert base.adamw is real  # each run puts back the optimizer it found


def test_an_out_it_cannot_write_is_one_line_before_any_run(tmp_path, bench_fails):
    (tmp_path / "afile").write_text("")
    line, out = bench_fails("ssl_throughput", "--out", str(tmp_path / "afile" / "r.json"))
    assert "afile" in line and "--out" in line and "pairs/s" not in out
