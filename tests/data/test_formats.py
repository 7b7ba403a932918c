"""Format detection and open_dataset on the real BigEarthNet formats and on seeded fakes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from eoreps.data.datasets.bigearthnet import BigEarthNetV1
from eoreps.data.datasets.bigearthnet_npz import BigEarthNetNpz
from eoreps.data.datasets.geotiff_folder import GeoTiffFolder
from eoreps.data.datasets.reben import ReBEN
from eoreps.data.formats import FORMATS, detect_format, open_dataset
from eoreps.errors import ConfigError, DataError


def _gen(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def ben(shared_data) -> Path:
    return shared_data / "bigearthnet"


@pytest.mark.realdata
def test_detect_real_formats(ben):
    assert detect_format(ben / "BigEarthNet-S2-Example") == "bigearthnet-v1-s2"
    assert detect_format(ben / "BigEarthNet-S1-Example") == "bigearthnet-v1-s1"
    assert detect_format(ben) == "bigearthnet-v1-pairs"
    assert detect_format(ben / "reben_v2_lmdb") == "reben-v2"
    assert detect_format(ben / "ben_s1s2_real.npz") == "bigearthnet-npz"
    patch = next(p for p in (ben / "BigEarthNet-S2-Example").iterdir() if p.is_dir())
    with pytest.raises(DataError, match="single BigEarthNet patch folder"):
        detect_format(patch)


def test_detect_fakes_and_unknown(tmp_path):
    assert detect_format(_gen("make_ben_v2").write_ben_v2(tmp_path / "rb", n=3, n_flagged=1)) == "reben-v2"
    assert (
        detect_format(_gen("make_geotiff_folder").write_geotiff_folder(tmp_path / "gt", n=2, side=6))
        == "geotiff-folder"
    )
    sim = tmp_path / "sim"
    sim.mkdir()
    (sim / "meta.json").write_text(json.dumps({"format": "simeo"}))
    assert detect_format(sim) == "simeo"
    with pytest.raises(DataError, match=r"nowhere: no such file or folder; expected .*reBEN"):
        detect_format(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: unrecognised dataset folder"):
        detect_format(tmp_path / "empty")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(DataError, match="x.txt: unrecognised dataset file"):
        detect_format(tmp_path / "x.txt")
    assert len(FORMATS) == 8


@pytest.mark.realdata
def test_open_v1_pairing_rules(ben):
    s2 = open_dataset(ben / "BigEarthNet-S2-Example")
    assert isinstance(s2, BigEarthNetV1) and s2.modalities == ("s2",) and len(s2) == 6
    s1 = open_dataset(ben / "BigEarthNet-S1-Example")
    assert s1.modalities == ("s1",) and len(s1) == 6
    both = open_dataset(ben / "BigEarthNet-S2-Example", modalities=["s2", "s1"])
    assert both.modalities == ("s2", "s1") and len(both) == 6
    assert both.s1_root.name == "BigEarthNet-S1-Example"
    from_s1 = open_dataset(ben / "BigEarthNet-S1-Example", pair=True)
    assert from_s1.modalities == ("s2", "s1") and from_s1.ids == both.ids
    parent = open_dataset(ben)
    assert parent.modalities == ("s2", "s1") and parent.ids == both.ids
    assert open_dataset(ben, modalities=["s1"]).modalities == ("s1",)


@pytest.mark.realdata
def test_open_other_real_formats(ben):
    rb = open_dataset(ben / "reben_v2_lmdb", split="train")
    assert isinstance(rb, ReBEN) and len(rb) == 6
    assert len(open_dataset(ben / "reben_v2_lmdb", include_snow_cloud=True)) == 24
    npz = open_dataset(ben / "ben_s1s2_real.npz", split="test", modalities=["s2"])
    assert isinstance(npz, BigEarthNetNpz) and len(npz) == 18 and npz.modalities == ("s2",)
    with pytest.raises(ConfigError, match="ReBEN has no option 'include_snow'"):
        open_dataset(ben / "reben_v2_lmdb", include_snow=True)
    with pytest.raises(ConfigError, match="pair=True applies to BigEarthNet v1"):
        open_dataset(ben / "reben_v2_lmdb", pair=True)


def test_open_geotiff_folder(tmp_path):
    root = _gen("make_geotiff_folder").write_geotiff_folder(tmp_path / "gt", n=4, side=6)
    ds = open_dataset(root, split="train", modalities=["s2"])
    assert isinstance(ds, GeoTiffFolder) and len(ds) == 2 and ds.modalities == ("s2",)


def test_open_unpaired_s2_root_alone(tmp_path, ben):
    import shutil

    shutil.copytree(ben / "BigEarthNet-S2-Example", tmp_path / "BigEarthNet-S2-Example")
    assert len(open_dataset(tmp_path / "BigEarthNet-S2-Example")) == 6
    with pytest.raises(DataError, match="no BigEarthNet v1 S1 folder beside it"):
        open_dataset(tmp_path / "BigEarthNet-S2-Example", modalities=["s2", "s1"])


def test_open_simeo(tmp_path):
    from eoreps.data.simeo import write_simeo

    ds = open_dataset("simeo", split="train", n=24)  # generated (cached) in memory, tiny
    assert len(ds) > 0 and ds.synthetic
    root = write_simeo(tmp_path / "sim", n=24, seed=0)
    assert detect_format(root) == "simeo"
    on_disk = open_dataset(root, split="train", modalities=["s1"])
    assert on_disk.synthetic and on_disk.modalities == ("s1",) and len(on_disk) == len(ds)
