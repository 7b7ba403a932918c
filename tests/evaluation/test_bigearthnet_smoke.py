"""The quick study on the real BigEarthNet S1/S2 pairs (multi-label, 19 classes) as a smoke test."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from eoreps.evaluation.study import load_study, quick_study, run_study


@pytest.mark.realdata
def test_quick_study_on_real_bigearthnet_pairs(shared_data, tmp_path) -> None:
    npz = shared_data / "bigearthnet" / "ben_s1s2_real.npz"
    if not npz.is_file():
        pytest.skip(f"{npz} is absent")
    cfg = quick_study(load_study({
        "name": "BigEarthNet smoke",
        "data": {"data": str(npz), "task": "multilabel", "modalities": ["s2", "s1"], "size": 32},
        "methods": [{"name": "random-init", "backbone": "random", "arch": "cnn-tiny", "fusion": "late"},
                    {"name": "supervised-late", "supervised": True, "arch": "cnn-tiny", "fusion": "late"}],
        "protocols": ["linear", "knn"], "fractions": [0.5, 1.0], "seeds": 1,
    }))
    report = run_study(cfg, tmp_path)
    df = pd.read_csv(tmp_path / "results.csv")
    assert len(df) == 2 * 3  # 2 fractions x (linear, knn, supervised)
    assert set(df["task"]) == {"multilabel"} and not df["synthetic"].any()
    for v in df["f1_macro"]:
        assert 0.0 <= v <= 1.0 and not math.isnan(v)
    tables = (tmp_path / "tables.md").read_text()
    assert "avg F1" in tables and "Synthetic" not in tables
    assert report.is_file() and (tmp_path / "label_efficiency.png").stat().st_size > 1000
