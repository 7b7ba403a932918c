"""configs/compare_backbones.yaml on generated files (issue 24, items 3 and 4): a tiny packed
BigEarthNet-like archive and three backbones (random, a saved eoreps backbone, torchgeo published-layout
weights saved from torchgeo's own constructor); the study writes one table with CIs for all three."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from eoreps.cli import main

CONFIG = Path(__file__).parents[2] / "configs" / "compare_backbones.yaml"
TORCHGEO = "torchgeo:ResNet18_Weights.SENTINEL2_ALL_MOCO"


@pytest.fixture(scope="module")
def packed_ben(tmp_path_factory) -> Path:
    from eoreps.data.pack import PackOptions, pack
    from eoreps.data.reben_writer import write_ben_v2

    root = tmp_path_factory.mktemp("ben")
    src = write_ben_v2(root / "reben", n=48, n_flagged=0, side=12, seed=0)
    pack(PackOptions(str(src), root / "pack", options={"size": 12, "resampling": "nearest"}))
    return root / "pack"


def _backbones(tmp_path: Path) -> str:
    import torchgeo.models

    from eoreps.models.io import save_backbone
    from eoreps.models.registry import create_backbone

    torch.manual_seed(0)
    save_backbone(create_backbone("cnn-tiny", in_chans=12), tmp_path / "runs" / "simclr" / "backbone",
                  {"method": "simclr", "modalities": ["s2"]})
    weights = tmp_path / "moco.pth"  # the published key layout: torchgeo's constructor, weights=None
    torch.save(torchgeo.models.resnet18(weights=None, in_chans=13, num_classes=0).state_dict(), weights)
    return f"random:cnn-tiny,{tmp_path / 'runs' / 'simclr' / 'backbone'},{TORCHGEO}@{weights}"


def test_compare_backbones_config_writes_one_table_with_cis(packed_ben, tmp_path, capsys):
    out = tmp_path / "compare"
    with pytest.raises(SystemExit) as e:
        main(["study", "label-efficiency", "--config", str(CONFIG), "--data", str(packed_ben),
              "--backbones", _backbones(tmp_path), "--out", str(out), "--quick"])
    assert e.value.code == 0, capsys.readouterr().err
    names = ["random-cnn-tiny", "simclr", "torchgeo-ResNet18_Weights.SENTINEL2_ALL_MOCO"]
    summary = pd.read_csv(out / "summary.csv")
    assert list(dict.fromkeys(summary["method"])) == names
    assert set(summary["protocol"]) == {"linear", "knn"} and set(summary["fraction"]) == {0.01, 0.1, 1.0}
    assert len(summary) == 3 * 2 * 3 and (summary["seeds"] == 2).all()
    assert (summary["ci_basis"] == "seeds x test samples").all()
    assert np.isfinite(summary[["ci_low", "ci_high"]]).all().all()
    assert (summary["ci_low"] <= summary["mean"] + 1e-9).all()
    assert (summary["mean"] <= summary["ci_high"] + 1e-9).all()
    md = (out / "tables.md").read_text(encoding="utf-8")
    header = next(ln for ln in md.splitlines() if ln.startswith("| method | protocol"))
    for pct in ("1 %", "10 %", "100 %"):
        assert f"| {pct} labels | {pct} labels 95 % CI |" in header
    for name in names:
        row = next(ln for ln in md.splitlines() if ln.startswith(f"| {name} | linear"))
        assert row.count("[") == 3  # one CI per fraction
    # frozen pretrained features + a deterministic probe on all the labels: the two seeds are one run
    frozen = summary[(summary["method"] == "simclr") & (summary["protocol"] == "linear")
                     & (summary["fraction"] == 1.0)].iloc[0]
    assert frozen["identical"]
    assert "(2 identical runs)" in next(ln for ln in md.splitlines() if ln.startswith("| simclr | linear"))
    assert (out / "label_efficiency.png").stat().st_size > 1000


def test_the_config_as_written_lists_three_kinds_of_backbone():
    from eoreps.evaluation.study import load_study, with_baselines

    cfg = load_study(CONFIG)
    kinds = {m.name: (m.kind, m.weights) for m in with_baselines(cfg)}
    assert kinds == {"random": ("random", None), "simclr": ("pretrained", None),
                     "ssl4eo-moco": ("pretrained", "weights/resnet18_sentinel2_all_moco.pth")}
    assert cfg.fractions == [0.01, 0.1, 1.0] and cfg.data.task == "multilabel" and cfg.seed_list == [0, 1, 2]
