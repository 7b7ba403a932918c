"""``eoreps data inspect``: library function and CLI, on the real BigEarthNet formats and broken copies."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from eoreps.cli import main
from eoreps.data.inspect import inspect_path
from eoreps.data.modalities import S2_L2A_BANDS


@pytest.fixture(scope="module")
def ben(shared_data) -> Path:
    return shared_data / "bigearthnet"


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(["data", "inspect", *args])
    out, err = capsys.readouterr()
    return int(e.value.code), out, err


def writable_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for d, _dirs, files in os.walk(dst):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(Path(d) / f, 0o644)
    return dst


@pytest.mark.realdata
def test_inspect_s2_folder(ben):
    r = inspect_path(ben / "BigEarthNet-S2-Example")
    assert r.format == "bigearthnet-v1-s2" and r.num_samples == 6 and r.samples_read == 6
    assert r.modalities == ["s2"] and r.band_names["s2"] == list(S2_L2A_BANDS)
    assert r.shapes["s2"] == [12, 120, 120] and r.nodata_fraction["s2"] == 0.0
    st = r.band_stats["s2"]["B08"]
    assert st["min"] <= st["mean"] <= st["max"] and st["std"] > 0
    assert st["mean"] > r.band_stats["s2"]["B04"]["mean"]  # vegetation: NIR above red on average
    assert r.task == "multi" and len(r.class_frequencies) == 19
    assert r.class_frequencies["Arable land"] == 3 and not r.synthetic
    json.dumps(r.to_dict())
    assert r.to_dict()["band_stats"]["s2"]["B02"] == r.band_stats["s2"]["B02"]


@pytest.mark.realdata
def test_cli_acceptance_on_real_folders(ben, capsys):
    code, out, _ = run_cli([str(ben / "BigEarthNet-S2-Example")], capsys)
    assert code == 0 and "samples:   6" in out and "bigearthnet-v1-s2" in out
    assert all(f"  {b} " in out for b in S2_L2A_BANDS)
    code, out, _ = run_cli([str(ben / "BigEarthNet-S1-Example")], capsys)
    assert code == 0 and "samples:   6" in out and "  VV " in out and "  VH " in out and "  B02 " not in out
    code, out, _ = run_cli([str(ben / "reben_v2_lmdb"), "--max-samples", "4"], capsys)
    assert code == 0 and "samples:   18 (+6 more flagged for snow/cloud/shadow" in out
    assert "checked:   4 of 18" in out and "modality s1" in out and "modality s2" in out


@pytest.mark.realdata
def test_max_samples_and_npz(ben):
    r = inspect_path(ben / "ben_s1s2_real.npz", max_samples=5)
    assert r.num_samples == 60 and r.samples_read == 5 and r.modalities == ["s2", "s1"]
    assert sum(v == 0 for v in r.class_frequencies.values()) == 4
    assert all(not math.isnan(s["mean"]) for s in r.band_stats["s1"].values())


@pytest.mark.realdata
def test_truncated_geotiff_one_line_exit_2(tmp_path, ben, capsys):
    root = writable_copy(ben / "BigEarthNet-S2-Example", tmp_path / "BigEarthNet-S2-Example")
    victim = sorted(root.glob("*/*_B04.tif"))[3]
    victim.write_bytes(victim.read_bytes()[:12000])
    code, out, err = run_cli([str(root)], capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(victim) in lines[0] and "truncated" in lines[0]
    assert lines[0].startswith("eoreps: error: ")


def test_inspect_simeo_says_synthetic(tmp_path):
    from eoreps.data.simeo import write_simeo

    r = inspect_path(write_simeo(tmp_path / "sim", n=24, seed=0), max_samples=8)
    assert r.format == "simeo" and r.synthetic and r.samples_read == 8 and r.num_samples == 24
    assert "SYNTHETIC" in r.to_text() and "s2" in r.modalities


@pytest.mark.realdata
@pytest.mark.slow  # a second interpreter re-imports torch; main() above covers the same code path
def test_truncated_geotiff_via_subprocess(tmp_path, ben):
    """The installed entry point (python -m eoreps.cli) behaves the same: one stderr line, exit 2."""
    root = writable_copy(ben / "BigEarthNet-S1-Example", tmp_path / "S1")
    victim = sorted(root.glob("*/*_VH.tif"))[0]
    victim.write_bytes(victim.read_bytes()[:3000])
    env = dict(os.environ, EOREPS_NO_PROGRESS="1")
    p = subprocess.run([sys.executable, "-m", "eoreps.cli", "data", "inspect", str(root)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and str(victim) in lines[0]


@pytest.mark.realdata
@pytest.mark.parametrize("problem", ["missing", "shape", "bad-path", "corrupt-header"])
def test_other_bad_input_one_line_exit_2(tmp_path, ben, capsys, problem):
    root = writable_copy(ben / "BigEarthNet-S2-Example", tmp_path / "S2")
    patch = sorted(p for p in root.iterdir() if p.is_dir())[1]
    if problem == "missing":
        culprit = patch / f"{patch.name}_B12.tif"
        culprit.unlink()
        expect = "band file is missing"
    elif problem == "shape":
        culprit = patch / f"{patch.name}_B09.tif"
        shutil.copyfile(patch / f"{patch.name}_B05.tif", culprit)  # 60 px where 20 px belong
        expect = "does not match the expected (20, 20)"
    elif problem == "corrupt-header":
        culprit = patch / f"{patch.name}_B03.tif"
        culprit.write_bytes(b"\x89PNG not a tiff" + culprit.read_bytes()[16:])
        expect = "corrupt or truncated GeoTIFF"
    else:
        culprit = tmp_path / "does-not-exist"
        expect = "no such file or folder"
    code, _, err = run_cli([str(root if problem != "bad-path" else culprit)], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1
    assert str(culprit) in lines[0] and expect in lines[0]


def test_inspect_own_folder_masks_and_nodata(tmp_path, capsys):
    """GeoTIFF folder: mask classes with pixel shares (sparse codes, 255 = no-data), entirely
    no-data samples."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mgf", Path(__file__).with_name("make_geotiff_folder.py"))
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    root = gen.write_geotiff_folder(tmp_path / "own", n=6, side=8, mask=True, mask_codes=(10, 20, 80),
                                    mask_nodata=255, empty_s1=(4,), id_header="sample_id")
    rep = inspect_path(root)
    assert rep.nodata_samples == [["patch_004", "s1"]]
    assert list(rep.mask_classes) == ["10", "20", "80"] and rep.mask_codes == {"10": 10, "20": 20, "80": 80}
    assert rep.mask_ignored_share == pytest.approx(4 / 64)
    assert sum(rep.mask_classes.values()) == pytest.approx(1 - 4 / 64)
    code, out, _ = run_cli([str(root), "--mask-classes", "10:tree,20:grass"], capsys)
    assert code == 0
    assert "mask classes (2; share of mask pixels, ignored" in out and "tree" in out and "grass" in out
    assert "entirely no-data (1;" in out and "patch_004  s1" in out
    ignored = float(out.split("ignored ")[1].split("%")[0]) / 100
    assert ignored > 4 / 64 + 0.1  # code 80 is not in the map: ignored too
    code, out, _ = run_cli([str(root), "--skip-nodata"], capsys)
    assert code == 0 and "skipped:   1 samples entirely no-data" in out and "patch_004  s1" not in out
