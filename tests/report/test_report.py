"""Report helpers: mean +- std tables, markdown, HTML with the synthetic banner, figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from eoreps.report import Section, markdown_table, mean_std_table, write_report
from eoreps.report.plots import bar_with_errors, metric_curves, plot_sample, save_figure


def _df() -> pd.DataFrame:
    return pd.DataFrame({"method": ["a", "a", "a", "b", "b", "b"], "seed": [0, 1, 2] * 2,
                         "acc": [0.8, 0.9, 1.0, 0.5, 0.5, 0.5], "frac": [0.1, 1.0, 1.0, 0.1, 1.0, 1.0]})


def test_mean_std_table_values():
    t = mean_std_table(_df(), ["method"], ["acc"], digits=2)
    assert list(t["method"]) == ["a", "b"]
    assert t.loc[0, "acc"] == "0.90 ± 0.10" and t.loc[1, "acc"] == "0.50 ± 0.00"
    assert list(t["n"]) == [3, 3]


def test_markdown_table_shape():
    md = markdown_table(pd.DataFrame({"x": ["a|b"], "y": [0.12345]}))
    lines = md.strip().splitlines()
    assert lines[0] == "| x | y |" and lines[2] == "| a\\|b | 0.123 |"


def test_report_html_synthetic_banner(tmp_path):
    fig = bar_with_errors(_df(), "method", "acc", title="t", synthetic=True)
    save_figure(fig, tmp_path / "f.png")
    p = write_report(tmp_path, "Demo", [Section("S", ["para"], [("tab", _df())], [("fig", "f.png")])],
                     synthetic=True)
    text = p.read_text()
    assert "Synthetic data" in text and "<table" in text and "f.png" in text
    assert (tmp_path / "f.png").stat().st_size > 1000
    p2 = write_report(tmp_path, "Real", [Section("S")], synthetic=False, filename="r2.html")
    assert "Synthetic data" not in p2.read_text()


def test_curves_and_sample_plot(tmp_path):
    save_figure(metric_curves(_df(), "frac", "acc", "method", logx=True), tmp_path / "c.png")
    s2 = torch.rand(12, 16, 16) * 3000
    s2[0, 0, 0] = float("nan")
    sample = {"s2": s2, "s1": torch.randn(2, 16, 16) - 12, "mask": torch.randint(0, 8, (16, 16)),
              "label": torch.tensor(3)}
    from eoreps.data.modalities import S1, S2_L2A

    fig = plot_sample(sample, {"s2": S2_L2A.bands, "s1": S1.bands}, classes=[str(i) for i in range(8)],
                      synthetic=True)
    assert len(fig.axes) == 3
    save_figure(fig, tmp_path / "s.png")
    assert np.isfinite(np.asarray(fig.axes[0].images[0].get_array())).all()


def test_metric_curves_colour_by_method_style_by_protocol():
    rows = [
        {"line": f"{m} ({p})", "method": m, "protocol": p, "frac": f, "acc": a, "seed": 0}
        for m in ["m0", "m1", "m2", "m3"]
        for p in ["linear", "finetune"]
        for f, a in [(0.1, 0.5), (1.0, 0.8)]
    ]
    fig = metric_curves(
        pd.DataFrame(rows),
        "frac",
        "acc",
        "line",
        title="SimEO (synthetic): x",
        synthetic=True,
        color="method",
        style="protocol",
    )
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    assert len(lines) == 8
    # same method -> same colour, different protocols -> different dashes
    assert lines["m1 (linear)"].get_color() == lines["m1 (finetune)"].get_color()
    assert lines["m1 (linear)"].get_color() != lines["m2 (linear)"].get_color()
    assert lines["m1 (linear)"].get_linestyle() != lines["m1 (finetune)"].get_linestyle()
    assert lines["m0 (linear)"].get_linestyle() == lines["m3 (linear)"].get_linestyle()
    # more than six lines: legend outside the axes; the synthetic tag is not repeated
    legend = fig.axes[0].get_legend()
    assert legend.get_bbox_to_anchor().x0 > fig.axes[0].get_window_extent().x1 - 1
    assert fig.axes[0].get_title().lower().count("synthetic") == 1
    assert metric_curves(_df(), "frac", "acc", "method", title="t", synthetic=True).axes[0].get_title() \
        == "t — SimEO (synthetic data)"
