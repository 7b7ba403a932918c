"""``benchmarks/hyper_mnist.py``: targets and Kendall's tau assembled from the recorded stages."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "hyper_mnist.py"


def _module():
    spec = importlib.util.spec_from_file_location("hyper_mnist_bench", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(prop: str, metric: str, w: float, s: float, learned: float, z: float | None) -> dict:
    return {"property": prop, "metric": metric, "W": w, "s(W)": s, "learned": learned, "z": z}


def _done() -> dict:
    ev = {"properties": [_row("test accuracy", "R2", 0.65, 0.81, 0.91, 0.87),
                         _row("epoch", "R2", 0.05, 0.10, 0.12, 0.11)],
          "kendall_tau": [_row("test accuracy", "Kendall tau", 0.5, 0.62, 0.71, None),
                          _row("epoch", "Kendall tau", 0.1, 0.2, 0.3, 0.25)],
          "model_selection": [{"predictor": "test accuracy at epoch 1", "spearman": 0.75}]}
    table = [{"method": "sampled", "epoch 0": 0.30, "epoch 1": 0.90},
             {"method": "random init", "epoch 0": 0.10, "epoch 1": 0.85},
             {"method": "average of the anchors, weight-matched", "epoch 0": 0.14, "epoch 1": 0.91}]
    sm = {"tables": {"mnist": table}, "zoo_final_mean_test_acc": 0.48, "diversity": {}}
    return {"fit": {"seconds": 100, "result": {"steps": 10}}, "evaluate": {"seconds": 5, "result": ev},
            "sample": {"seconds": 7, "result": sm}}


def test_results_from_recorded_stages_report_targets_and_kendall_tau(capsys):
    bench = _module()
    args = argparse.Namespace(sample_from="rep-aligned", aligned_query="test_acc >= 0.5", fit_epochs=30,
                              aligned_functional=0.1)
    res = bench._results(_done(), args, Path("zoo"), {"tokenizer": "window"}, [0, 1], [0, 1], 30)
    passed = {t["target"]: (round(t["measured"], 3), t["pass"]) for t in res["targets"]}
    assert passed["R2(test acc) from learned >= 0.90"] == (0.91, True)
    assert passed["R2(test acc) learned - s(W) >= 0.05"] == (0.1, True)
    assert passed["sampled zero-shot acc / zoo mean final acc >= 0.5"] == (0.625, True)
    assert passed["sampled acc after 1 epoch - random init after 1 epoch > 0"] == (0.05, True)
    assert res["kendall_tau"][0]["learned"] == 0.71 and res["seconds"] == {"fit": 100, "evaluate": 5,
                                                                           "sample": 7}
    assert res["fit"] == {"steps": 10} and "fit_aligned" not in res
    out = capsys.readouterr().out
    assert "test accuracy | 0.500 | 0.620 | 0.710 | nan" in out  # tau printed beside the targets


def test_an_unknown_stage_is_refused(monkeypatch, capsys):
    bench = _module()
    monkeypatch.setattr(sys, "argv", ["hyper_mnist.py", "--zoo", "z", "--stages", "fit,train"])
    with pytest.raises(SystemExit) as e:
        bench.main()
    assert e.value.code == 2 and "unknown train" in capsys.readouterr().err
