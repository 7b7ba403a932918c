"""External weights in the evaluation: band mapping, unit checks and conversion, study records
(eoreps.evaluation.input_plan, MethodSpec weights / band_fill / data_units)."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch
from eval_toy import toy_data

from eoreps.cli import main
from eoreps.data.modalities import S2_L2A_BANDS
from eoreps.digest import digest
from eoreps.errors import ConfigError, DataError
from eoreps.evaluation.encoders import MethodSpec, load_pretrained
from eoreps.evaluation.study import StudyConfig, cell_hash, plan_cells, run_study
from eoreps.models import create_backbone, save_backbone

TG_S2 = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8a", "B9", "B10", "B11", "B12"]
RGBN = ("B02", "B03", "B04", "B08")


def _data(scale: float = 1.0, s1: str = "db"):
    """Toy data with named bands: s2 as reflectance x 1e4 (``scale`` 1) or reflectance (1e-4), s1 in dB or
    linear power."""
    data = toy_data("classify", n_train=30, n_eval=15)
    for split in data.splits.values():
        split.inputs["s2"] = (split.inputs["s2"] * 300 + 1500) * scale
        split.inputs["s1"] = split.inputs["s1"] * 3 - 15 if s1 == "db" else split.inputs["s1"].abs() * 0.05
    data.band_names = {"s2": RGBN, "s1": ("VV", "VH")}
    return data


def _card_backbone(tmp_path, name: str, in_chans: int, modality: str, bands: list[str], mean, std):
    bb = create_backbone("cnn-tiny", in_chans=in_chans)
    save_backbone(bb, tmp_path / name, {"method": "test", "modalities": [modality],
                                        "band_names": {modality: bands},
                                        "normalization": {modality: {"mean": mean, "std": std}}})
    return tmp_path / name


def test_four_bands_feed_a_13_band_backbone(tmp_path) -> None:
    folder = _card_backbone(tmp_path, "s2all", 13, "s2", TG_S2, [0.0] * 13, [10000.0] * 13)
    built = load_pretrained(MethodSpec("m", backbone=str(folder)), _data())
    assert built.stats.mean["s2"] == (0.0,) * 4 and built.stats.std["s2"] == (10000.0,) * 4
    select = built.encoder.adapters["backbone"]
    y = select(torch.ones(2, 4, 3, 3))
    assert y.shape == (2, 13, 3, 3) and y[:, [1, 2, 3, 7]].eq(1).all() and y[:, 0].eq(0).all()
    line = built.inputs["backbone"]
    assert "4 data bands -> 13 weights bands" in line and "units dn" in line
    assert built.encoder({"s2": torch.randn(2, 4, 8, 8)}).shape[0] == 2
    assert "inputs" in built.identity["backbones"]["backbone"]  # mapped features never share a cache entry


def test_reflectance_data_is_converted_to_the_weights_dn(tmp_path) -> None:
    folder = _card_backbone(tmp_path, "s2all", 13, "s2", TG_S2, [0.0] * 13, [10000.0] * 13)
    built = load_pretrained(MethodSpec("m", backbone=str(folder)), _data(scale=1e-4))
    assert built.stats.std["s2"] == pytest.approx((1.0,) * 4)  # x_refl / 1 == x_dn / 10000
    assert "reflectance x 10000 -> dn" in built.inputs["backbone"]


def test_dn_data_into_reflectance_weights_is_converted(tmp_path) -> None:
    folder = _card_backbone(tmp_path, "refl", 4, "s2", list(RGBN), [0.1] * 4, [0.05] * 4)
    built = load_pretrained(MethodSpec("m", backbone=str(folder)), _data())
    assert built.stats.mean["s2"] == pytest.approx((1000.0,) * 4) and "dn / 10000" in built.inputs["backbone"]
    assert "backbone" not in built.encoder.adapters  # same bands: nothing to map


def test_linear_sar_into_db_weights_is_refused_then_declared(tmp_path) -> None:
    folder = _card_backbone(tmp_path, "s1", 2, "s1", ["VV", "VH"], [-12.59, -20.26], [5.26, 5.91])
    with pytest.raises(DataError) as e:
        load_pretrained(MethodSpec("m", backbone=str(folder)), _data(s1="linear"))
    msg = str(e.value)
    assert "\n" not in msg and str(folder) in msg and "10 * log10(x)" in msg
    built = load_pretrained(MethodSpec("m", backbone=str(folder), data_units="db"), _data(s1="linear"))
    assert built.stats.mean["s1"] == (-12.59, -20.26)
    ok = load_pretrained(MethodSpec("m", backbone=str(folder)), _data(s1="db"))
    assert ok.inputs["backbone"] == "s1: 2 bands; units db"


def test_eoreps_cards_without_band_names_behave_as_before(tmp_path) -> None:
    bb = create_backbone("cnn-tiny", in_chans=4)
    save_backbone(bb, tmp_path / "own", {"method": "test", "modalities": ["s2"]})
    built = load_pretrained(MethodSpec("m", backbone=str(tmp_path / "own")), _data())
    assert built.stats is None and not built.encoder.adapters
    assert "inputs" not in built.identity["backbones"]["backbone"]


def test_method_spec_hash_ignores_unset_new_fields() -> None:
    m = MethodSpec("rand", backbone="random", arch="cnn-tiny")
    old = {k: v for k, v in dataclasses.asdict(m).items()
           if k not in ("pretrain", "weights", "key_map", "band_fill", "data_units")}
    assert m.hash_record() == old
    cfg = StudyConfig(methods=[m], protocols=["knn"], fractions=[1.0], seeds=1)
    cell = plan_cells(cfg, [m])[0]
    assert cell_hash(cfg, m, cell) == cell_hash(cfg, dataclasses.replace(m, weights=None), cell)
    assert digest(m.hash_record()) != digest(MethodSpec("rand", backbone="random", arch="cnn-tiny",
                                                        band_fill="nearest").hash_record())


def test_method_spec_checks_external_fields() -> None:
    with pytest.raises(ConfigError, match="needs weights"):
        MethodSpec("moco", backbone="torchgeo:ResNet18_Weights.SENTINEL2_ALL_MOCO")
    with pytest.raises(ConfigError, match="needs weights"):
        MethodSpec("own", backbone="timm:resnet18")
    with pytest.raises(ConfigError, match="band_fill 'zeros'"):
        MethodSpec("m", backbone="x", band_fill="zeros")
    with pytest.raises(ConfigError, match="needs a backbone spec"):
        MethodSpec("m", backbone="random", weights="w.pth")


@pytest.fixture(scope="module")
def tg_file(tmp_path_factory):
    tgm = pytest.importorskip("torchgeo.models")
    path = tmp_path_factory.mktemp("tg") / "moco.pth"
    torch.save(tgm.resnet18(weights=None, in_chans=13).state_dict(), path)
    return path


def test_study_with_a_torchgeo_spec_records_the_mapping(tg_file, tmp_path) -> None:
    method = MethodSpec("moco", backbone="torchgeo:ResNet18_Weights.SENTINEL2_ALL_MOCO", weights=str(tg_file),
                        modalities=["s2"])
    cfg = StudyConfig(methods=[method], protocols=["knn"], fractions=[1.0], seeds=1)
    run_study(cfg, tmp_path, data=_data())
    df = pd.read_csv(tmp_path / "results.csv")
    assert len(df) == 1 and df["method"][0] == "moco"
    assert df["inputs"][0].startswith("s2: 4 data bands -> 13 weights bands; filled B01 (mean)")


def test_evaluate_spec_without_weights_is_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "--backbone", "torchgeo:ResNet18_Weights.SENTINEL2_ALL_MOCO", "--quick"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "needs weights" in err


def test_evaluate_command_with_torchgeo_weights(tg_file, tmp_path, capsys) -> None:
    from eoreps.data.simeo import write_simeo

    folder = write_simeo(tmp_path / "simeo", n=60, seed=1)
    out = tmp_path / "eval"
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "--backbone", "torchgeo:ResNet18_Weights.SENTINEL2_ALL_MOCO",
              "--weights", str(tg_file), "--protocol", "knn", "--fractions", "1.0", "--seeds", "1",
              "--modalities", "s2",
              "--data", str(folder), "--out", str(out), "--quick"])
    assert e.value.code == 0, capsys.readouterr().err
    df = pd.read_csv(out / "results.csv")
    assert df["inputs"][0] == "s2: 12 data bands -> 13 weights bands; filled B10 (mean); units dn"
    assert list(S2_L2A_BANDS).count("B10") == 0


def test_dem_magnitudes_are_not_read_as_units(tmp_path) -> None:
    """A DEM card in metres against a low-lying data set must not be 'converted' as if it were DN."""
    data = _data()
    for split in data.splits.values():
        split.inputs["dem"] = split.inputs["s1"][:, :1].abs() * 0.5  # metres, near sea level
    data.modalities = (*data.modalities, "dem")
    data.band_names["dem"] = ("elevation",)
    folder = _card_backbone(tmp_path, "dem", 1, "dem", ["elevation"], [350.0], [300.0])
    built = load_pretrained(MethodSpec("m", backbone=str(folder)), data)
    assert built.stats.mean["dem"] == (350.0,) and built.inputs["backbone"] == "dem: 1 bands; units unchecked"


def test_adapter_protocol_sees_the_mapped_channels_and_keeps_the_mapping(tmp_path) -> None:
    """4 data bands mapped to a 13-band backbone: LoRA fits (13 == 13 after the mapping), and the spectral
    adapter is chained after the band mapping instead of replacing it (fill and order kept)."""
    from types import SimpleNamespace

    from eoreps.evaluation.protocols.adapter import SpectralAdapter, _choose, _prepare
    from eoreps.evaluation.protocols.base import AdapterOptions

    folder = _card_backbone(tmp_path, "s2all", 13, "s2", TG_S2, [0.0] * 13, [10000.0] * 13)
    data = _data()
    built = load_pretrained(MethodSpec("m", backbone=str(folder)), data)
    select = built.encoder.adapters["backbone"]

    def cell(kind: str) -> SimpleNamespace:
        return SimpleNamespace(options=SimpleNamespace(adapter=AdapterOptions(kind=kind)), data=data)

    assert _choose(built, cell("lora")) == "lora" and _choose(built, cell("auto")) == "lora"
    enc, modules, info = _prepare(built, cell("spectral"))
    chained = enc.adapters["backbone"]
    assert isinstance(chained, torch.nn.Sequential) and chained[0] is select
    assert isinstance(modules[0], SpectralAdapter) and (modules[0].c_in, modules[0].c_out) == (13, 13)
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(chained(x), select(x))  # residual adapter starts as the identity
    assert info["adapter"] == "spectral" and info["adapter_params"] > 0


def test_cell_hash_follows_the_weights_file_content(tmp_path) -> None:
    """New weights at the same path are new cells (the hash keys the file's sha256, not only its path)."""
    import os

    path = tmp_path / "r18.pth"
    torch.save({"w": torch.zeros(3)}, path)
    m = MethodSpec("moco", backbone="timm:resnet18", weights=str(path))
    cfg = StudyConfig(methods=[m], protocols=["knn"], fractions=[1.0], seeds=1)
    cell = plan_cells(cfg, [m])[0]
    before = cell_hash(cfg, m, cell)
    assert cell_hash(cfg, m, cell) == before and len(m.hash_record()["weights_sha256"]) == 64
    tmp = tmp_path / "new.pth"
    torch.save({"w": torch.ones(3)}, tmp)  # same size, other values
    os.replace(tmp, path)
    assert cell_hash(cfg, m, cell) != before
