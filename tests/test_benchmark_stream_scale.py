"""``benchmarks/stream_scale.py``: its process-tree memory sampler, its verdicts, and (slow) a --quick run."""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "stream_scale.py"


def _module():
    spec = importlib.util.spec_from_file_location("stream_scale", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


_PARENT = """
import subprocess, sys
child = "import time; x = bytearray(300 * 2**20); x[::4096] = b'1' * len(x[::4096]); time.sleep(1.0)"
subprocess.run([sys.executable, "-c", child], check=True)
print("STREAM_SCALE_RESULT {\\"ok\\": 1}")
"""


def test_tree_memory_counts_the_child_processes():
    bench = _module()
    m = bench.run_measured([sys.executable, "-c", _PARENT], env=None, interval=0.05)
    assert m.result == {"ok": 1} and m.rc == 0
    assert m.max_procs == 2  # the parent and its child, sampled together
    assert m.peak_anon >= 300 * 2**20 and m.peak_rss >= m.peak_anon  # the child's 300 MB counted


def _res(pack_peaks, pretrain_peaks, stream, memory, loader, backbone, mapped=0.0):
    """Results as ``measure`` returns them; ``mapped``: bytes of mapped files in every peak RSS."""
    sizes = {n: {"pack": {"peak_rss": pk + mapped, "peak_nofile": pk, "samples_per_s": 10.0,
                          "per_worker": 5.0, "source_bytes": 100, "packed_bytes": 150}}
             for n, pk in pack_peaks.items()}
    median = {f"stream_{n}": {"peak_rss": pk + mapped, "peak_nofile": pk, "samples_per_s": stream}
              for n, pk in pretrain_peaks.items()}
    median["memory_100"] = {"samples_per_s": memory}
    median["loader"] = {"loader_samples_per_s": loader, "backbone_images_per_s": backbone}
    return {"sizes": sizes, "median": median}


def test_report_verdicts():
    bench = _module()
    args = argparse.Namespace(sizes=[100, 400], side=120, method="multimodal", backbone="", crop=None,
                              batch_size=16, warmup=2, steps=3, workers=2, threads=2, repeats=1,
                              loader_workers=2)
    gb = 2**30
    good = bench.report(args, _res({100: 1.0 * gb, 400: 1.1 * gb}, {100: 2.0 * gb, 400: 2.0 * gb},
                                   stream=9.5, memory=10.0, loader=21.0, backbone=10.0))
    verdicts = [ln for ln in good if ln.startswith(("PASS", "FAIL"))]
    assert len(verdicts) == 10 and all(ln.startswith("PASS") for ln in verdicts), good
    assert any("0.95x" in ln for ln in verdicts) and any("2.10x" in ln for ln in verdicts)
    bad = bench.report(args, _res({100: 1.0 * gb, 400: 1.2 * gb}, {100: 2.0 * gb, 400: 3.5 * gb},
                                  stream=8.0, memory=10.0, loader=19.0, backbone=10.0))
    failed = [ln for ln in bad if ln.startswith("FAIL")]
    assert len(failed) == 8, bad  # both kinds: pack +20 %, pretrain 3.5 GB and +75 %; streaming; loader
    assert any("peak RSS of pack flat" in ln and "+20.0%" in ln for ln in failed)
    assert any("less mapped files of pack flat" in ln and "+20.0%" in ln for ln in failed)
    assert any("0.80x" in ln for ln in failed) and any("1.90x" in ln for ln in failed)
    mapped = bench.report(args, _res({100: 1.0 * gb, 400: 1.0 * gb}, {100: 2.0 * gb, 400: 2.0 * gb},
                                     stream=9.5, memory=10.0, loader=21.0, backbone=10.0, mapped=1.5 * gb))
    failed = [ln for ln in mapped if ln.startswith("FAIL")]  # 1.5 GB of page cache mapped: only RSS fails
    assert len(failed) == 1 and "peak RSS of pretrain <= 3 GB" in failed[0], mapped


@pytest.mark.slow
def test_quick_run_writes_results(tmp_path):
    out = tmp_path / "res" / "q"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--work", str(tmp_path / "w"), "--out",
                           str(out)], capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(Path(f"{out}.json").read_text())
    assert res["smoke"] is True and sorted(int(n) for n in res["sizes"]) == [100, 400]
    assert set(res["median"]) == {"stream_100", "stream_400", "memory_100", "loader"}
    shapes = {tuple(r["batch_shape"]) for name, rs in res["runs"].items() if name != "loader" for r in rs}
    assert len(shapes) == 1  # streamed and in-memory runs train on the same crops
    assert res["median"]["stream_100"]["peak_rss"] > 0 and res["sizes"]["400"]["pack"]["packed_bytes"] > 0
    assert sum(ln.startswith(("PASS", "FAIL")) for ln in proc.stdout.splitlines()) == 10
    assert "smoke run" in Path(f"{out}.md").read_text()


def test_pack_stage_continues_where_a_cut_off_call_stopped(tmp_path):
    bench_mod = _module()

    class FakeBench:  # archives and packs without packing: each pack writes a manifest and counts itself
        def __init__(self, repeats: int, fail_at: int | None = None) -> None:
            self.args, self.calls, self.fail_at = argparse.Namespace(repeats=repeats), 0, fail_at

        def archive(self, n):
            root = tmp_path / f"reben_{n}"
            root.mkdir(exist_ok=True)
            return root, 1.5

        def pack(self, root, n):
            self.calls += 1
            if self.calls == self.fail_at:
                raise KeyboardInterrupt  # a time limit cutting the stage off
            out = tmp_path / f"pack_{n}"
            out.mkdir(exist_ok=True)
            (out / "eoreps_pack.json").write_text("{}")
            return {"pack": str(out), "peak_rss": 100.0 * self.calls, "samples_per_s": float(self.calls)}

    staged = tmp_path / "stage_pack.json"
    first = FakeBench(repeats=3, fail_at=5)  # 3 packs of 100 pairs, then 1 of 400, cut off in the 2nd
    with pytest.raises(KeyboardInterrupt):
        bench_mod.pack_sizes(first, [100, 400], staged, {})
    saved = json.loads(staged.read_text())
    assert [len(saved[n]["pack_runs"]) for n in ("100", "400")] == [3, 1]
    second = FakeBench(repeats=3)
    out: dict = {}
    bench_mod.pack_sizes(second, [100, 400], staged, out)
    assert second.calls == 2  # only the two missing packs of 400 pairs ran
    assert [len(out[n]["pack_runs"]) for n in (100, 400)] == [3, 3]
    assert out[100]["pack"]["samples_per_s"] == 2.0 and out[100]["write_s"] == 1.5  # medians of 3
    assert json.loads(staged.read_text())["400"]["pack"]["samples_per_s"] == 2.0  # runs 4, 1, 2
    third = FakeBench(repeats=4)  # one more run each, one pack per call
    assert bench_mod.pack_sizes(third, [100, 400], staged, {}, max_packs=1) is False and third.calls == 1
    assert bench_mod.pack_sizes(third, [100, 400], staged, {}, max_packs=1) is True and third.calls == 2
