"""``benchmarks/window_stream_read.py``: both loaders run on the same batches, agree, and the rows-only one
reads fewer values; the JSON holds what it printed."""

from __future__ import annotations

import json


def test_rows_only_reads_fewer_values_with_equal_views(bench_script, tiny_zoo, tmp_path, monkeypatch):
    import eoreps.hyper.window_stream as window_stream

    monkeypatch.setattr(window_stream, "WHOLE_VALUES", 0)  # the tiny zoo's tensors are all small
    monkeypatch.setattr(window_stream, "ROWS_ABOVE", 0)
    out = bench_script("window_stream_read").main(
        ["--zoo", str(tiny_zoo), "--window", "8", "--token-width", "16", "--batch-size", "4",
         "--batches", "6", "--repeats", "1", "--json", str(tmp_path / "r.json")])
    assert out["chains"] > 0  # permutations drawn: the rows read depend on them
    assert 0 < out["values_read_per_batch"]["rows"] < out["values_read_per_batch"]["whole"]
    assert out["read_ratio_whole_over_rows"] > 1
    assert json.loads((tmp_path / "r.json").read_text())["median_s_per_batch"] == out["median_s_per_batch"]
