"""``eoreps zoo build --from-pretraining``: a zoo of SSL-pretrained backbones scored by linear probes."""

from __future__ import annotations

import re

import pandas as pd
import pytest
import torch

from eoreps.errors import ConfigError, DataError
from eoreps.hyper.features import weight_statistics
from eoreps.hyper.probing_features import zoo_baseline_scores, zoo_probing_features
from eoreps.models.io import save_backbone
from eoreps.models.registry import create_backbone
from eoreps.zoo.backbones import BackboneArch
from eoreps.zoo.inspect import inspect_zoo
from eoreps.zoo.modelzoo import ModelZoo
from eoreps.zoo.pretrained import _weights, load_pretrain_zoo_spec, probe_column

SPEC = (
    "methods: [simclr, rotation]\nseeds: [0]\ndata_fractions: [1.0]\nmax_samples: 64\nbatch_size: 16\n"
    "simeo_n: 400\nprobe_fractions: [0.01, 0.1]\n"
)


def _cli(*args: str) -> int:
    from eoreps.cli import main

    with pytest.raises(SystemExit) as e:
        main(["zoo", "build", *args])
    return int(e.value.code or 0)


def test_zoo_from_two_tiny_pretrainings(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "zoo"
    assert _cli("--from-pretraining", str(spec), "--quick", "--out", str(out)) == 0
    df = pd.read_parquet(out / "index.parquet")
    assert list(df["method"]) == ["simclr", "rotation"] and (df["epoch"] == 1).all()
    for col in ("probe_acc_1", "probe_acc_10"):
        assert df[col].between(0.0, 1.0).all() and df[col].notna().all()
    zoo = ModelZoo(out)
    arch = BackboneArch("cnn-tiny", (12, 32, 32), 8, head=False)
    assert zoo.num_params == arch.num_params  # the backbone alone, BatchNorm statistics included
    bb = zoo.build_model(0)
    assert bb(torch.zeros(2, 12, 32, 32)).shape == (2, bb.num_features)
    # the three feature sets a prediction of probe accuracy from weights compares
    w = zoo.weights_matrix()
    assert weight_statistics(w, zoo.param_order).shape == (2, 7 * len(zoo.param_order))
    assert zoo_probing_features(zoo).shape == (2, 2 * bb.num_features + 5)
    with pytest.raises(DataError, match="no column 'nope'"):
        zoo_baseline_scores(zoo, target="nope")
    rep = inspect_zoo(out)
    assert set(rep["metrics"]) == {"probe_acc_1", "probe_acc_10"} and rep["figure"] is None
    assert rep["factors"]["method"] == {"rotation": 1, "simclr": 1}
    capsys.readouterr()
    # a rerun finds every member finished
    assert _cli("--from-pretraining", str(spec), "--quick", "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert re.search(r"members_trained\s+0\n", printed) and "1 epoch" in printed
    pd.testing.assert_frame_equal(df, pd.read_parquet(out / "index.parquet"))


def test_a_backbone_of_another_architecture_is_refused(tmp_path):
    save_backbone(create_backbone("cnn-small", in_chans=12), tmp_path / "other")
    with pytest.raises(ConfigError, match="one architecture"):
        _weights(
            BackboneArch("cnn-tiny", (12, 32, 32), 8, head=False),
            tmp_path / "other" / "backbone.safetensors",
            "simclr",
        )


@pytest.mark.parametrize(
    "text, needle",
    [
        ("methods: [simclr, nosuch]\n", "nosuch"),
        ("backbone: cnn_s\n", "cnn_s"),
        ("probe_fractions: [2]\n", "2"),
    ],
)
def test_bad_spec_is_one_line(tmp_path, capsys, text, needle):
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    assert _cli("--from-pretraining", str(spec), "--out", str(tmp_path / "z")) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0]


def test_probe_columns_are_named_by_percent():
    assert [probe_column(f) for f in (0.01, 0.1, 1.0, 0.005)] == [
        "probe_acc_1",
        "probe_acc_10",
        "probe_acc_100",
        "probe_acc_0.5",
    ]
    assert load_pretrain_zoo_spec({}, quick=True).epochs == 1


class _Stop(Exception):
    """Stops ``_pretrain`` at the pretraining call, after its options are recorded."""


def test_members_pretrain_on_the_split_the_probes_use(tmp_path, monkeypatch):
    """A GeoTIFF folder's automatic split follows the build seed, not the member's: a member with another
    seed must not pretrain on the probes' test images."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
    from make_geotiff_folder import write_geotiff_folder

    from eoreps.zoo.pretrained import PretrainZooSpec, _pretrain, _split_options

    seen = []

    def fake(cfg):
        seen.append(cfg)
        raise _Stop

    monkeypatch.setattr("eoreps.evaluation.pretraining.run_method_pretraining", fake)
    folder = write_geotiff_folder(tmp_path / "tifs", n=6, split=False)
    spec = PretrainZooSpec(methods=["simclr"], seeds=[3], data_fractions=[1.0], data=str(folder))
    with pytest.raises(_Stop):
        _pretrain(spec, spec.members()[0], tmp_path / "zoo", seed=7)
    assert seen[-1].seed == 3 and seen[-1].data_options == {"split_seed": 7}
    assert _split_options(PretrainZooSpec(data="simeo"), 7) == {}  # SimEO's split is fixed
