"""Rendered tables: ``mean ± std`` never wraps, parameter counts print as integers."""

from __future__ import annotations

import pandas as pd

from eoreps.hyper.probes import to_markdown
from eoreps.report import Section, markdown_table, mean_std_table, write_report


def _cost() -> pd.DataFrame:
    # as evaluation.tables builds it: protocol results store counts as floats
    return pd.DataFrame({"method": ["simclr", "mae"], "acc": ["67.5 ± 1.6", "70.1 ± 0.4"],
                         "trainable_params": [1234.0, 2_816_010.0], "seconds_per_cell": [1.25, 3.5]})


def test_markdown_counts_integers_and_nonbreaking_pm():
    md = markdown_table(_cost())
    assert "| 1,234 |" in md and "| 2,816,010 |" in md
    assert "1234.0" not in md and "e+" not in md
    assert "67.5\u00a0±\u00a01.6" in md and "67.5 ± 1.6" not in md
    assert "| 1.250 |" in md  # other floats unchanged
    assert to_markdown(_cost()) == md  # one renderer for hyper tables too


def test_html_counts_integers_and_nonbreaking_pm(tmp_path):
    p = write_report(tmp_path, "Cost", [Section("S", tables=[("cost", _cost())])], synthetic=False)
    text = p.read_text(encoding="utf-8")
    assert "<td>1,234</td>" in text and "<td>2,816,010</td>" in text
    assert "1234.000" not in text and "2816010.000" not in text
    assert "67.5\u00a0±\u00a01.6" in text and "67.5 ± 1.6" not in text


def test_seed_count_column_is_integer_after_mean_std():
    df = pd.DataFrame({"m": ["a", "a"], "seed": [0, 1], "acc": [0.5, 0.7]})
    t = mean_std_table(df, ["m"], ["acc"])
    assert t.loc[0, "acc"] == "0.600 ± 0.141"  # the data frame (and CSV) keep plain spaces
    assert markdown_table(t).splitlines()[2] == "| a | 0.600\u00a0±\u00a00.141 | 2 |"


def test_smoke_run_banner_only_when_asked(tmp_path):
    from eoreps.smoke import smoke_fields, smoke_markdown

    sec = [Section("S", tables=[("cost", _cost())])]
    smoke = write_report(
        tmp_path, "Q", sec, synthetic=False, smoke="2 test models", filename="q.html"
    ).read_text()
    full = write_report(tmp_path, "F", sec, synthetic=False, filename="f.html").read_text()
    assert "(smoke run: 2 test models, not a measurement)" in smoke and "smoke run" not in full
    assert smoke_markdown("2 test models").startswith("> **(smoke run: 2 test models, not a measurement)**")
    assert smoke_fields(False) == {"smoke": False}
    assert smoke_fields(True, "x") == {"smoke": True, "smoke_note": "(smoke run: x, not a measurement)"}
