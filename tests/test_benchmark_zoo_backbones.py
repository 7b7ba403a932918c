"""``benchmarks/zoo_backbones.py``: its grids and a tiny local build's figures."""

from __future__ import annotations

import json
import sys

from eoreps.zoo.backbones import BACKBONE_FACTORS, plan_backbone_members


def test_varied_grid_varies_every_factor_the_issue_lists(bench_script):
    bench = bench_script("zoo_backbones")
    members = plan_backbone_members(bench.varied_grid(100))
    assert len(members) == 100 and len({m.model_id for m in members}) == 100
    for f in ("seed", "optimizer", "lr", "weight_decay", "augment", "train_fraction"):
        assert len({getattr(m, f) for m in members}) > 1, f
    seeds_only = plan_backbone_members(bench.seed_grid(3))
    assert [m.seed for m in seeds_only] == [0, 1, 2]
    assert all(len({getattr(m, f) for m in seeds_only}) == 1 for f in BACKBONE_FACTORS if f != "seed")


def test_first_seed_replicates_the_design_with_other_seeds(bench_script):
    bench = bench_script("zoo_backbones")
    base, shifted = (plan_backbone_members(bench.varied_grid(100, s)) for s in (0, 1000))
    assert [m.seed + 1000 for m in base] == [m.seed for m in shifted]
    for f in ("optimizer", "lr", "weight_decay", "augment", "train_fraction"):
        assert [getattr(m, f) for m in base] == [getattr(m, f) for m in shifted], f
    assert [m.seed for m in plan_backbone_members(bench.seed_grid(2, first_seed=7))] == [7, 8]


def test_tiny_build_reports_training_cpu_and_accuracy_spread(tmp_path, monkeypatch, bench_script):
    bench = bench_script("zoo_backbones")
    out = tmp_path / "r.json"
    argv = ["zoo_backbones.py", "--members", "2", "--epochs", "1", "--simeo-n", "120",
            "--train-eval-max", "20", "--grid", "varied", "--out", str(tmp_path / "z"), "--json", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    res = json.loads(out.read_text())
    assert res["members_trained"] == 2 and res["grid"] == "varied"
    assert res["train_cpu_s"] > 0 and res["cpu_s_per_member_epoch"] > 0
    assert res["cpu_s_per_member_epoch"] == round(res["train_cpu_s"] / 2, 3)
    assert 0.0 <= res["final_test_acc"]["min"] <= res["final_test_acc"]["max"] <= 1.0
    assert res["command"].startswith("python ") and res["cpu"]
