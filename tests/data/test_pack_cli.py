"""``eoreps data pack`` on the command line: the summary, ``--verify`` and each bad input as one line, exit 2,
naming the file and the fix, with nothing already packed lost."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from eoreps.cli import main
from eoreps.data import pack as pack_mod

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_geotiff_folder import _write, write_geotiff_folder  # noqa: E402


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(argv)
    out, err = capsys.readouterr()
    return e.value.code, out, err


def _one_line_error(argv: list[str], capsys, *named: str) -> str:
    code, _, err = _run(argv, capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and "Traceback" not in err and len(lines) == 1, err
    for n in named:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def folder(tmp_path) -> Path:
    return write_geotiff_folder(tmp_path / "gt", n=8, side=8)


def test_pack_then_verify_prints_the_summary(folder, tmp_path, capsys):
    out = tmp_path / "p"
    code, text, _ = _run(["data", "pack", str(folder), "--out", str(out), "--part-size", "3", "--verify",
                          "--verify-samples", "3"], capsys)
    assert code in (0, None)
    assert f"into {out}: train 4, val 2, test 2; skipped 0 corrupt item(s)" in text
    assert "pack OK" in text and "3 sample(s) identical to the source" in text
    code, text, _ = _run(["data", "pack", str(folder), "--out", str(out), "--verify"], capsys)
    assert code in (0, None) and text.startswith(f"{out}: pack OK") and "packed" not in text
    chunk = next((out / "train").glob("chunk-*.bin"))
    chunk.write_bytes(chunk.read_bytes()[:-5])
    _one_line_error(
        ["data", "pack", str(folder), "--out", str(out), "--verify"], capsys, str(chunk), "re-pack"
    )


def test_non_empty_folder_and_complete_pack_are_refused(folder, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    _one_line_error(["data", "pack", str(folder), "--out", str(other)], capsys, str(other), "--out")
    assert (other / "notes.txt").read_text() == "mine"
    out = tmp_path / "p"
    _run(["data", "pack", str(folder), "--out", str(out)], capsys)
    before = _files(out)
    _one_line_error(
        ["data", "pack", str(folder), "--out", str(out)], capsys, str(out), "complete pack", "--verify"
    )
    assert _files(out) == before


def test_interrupted_pack_needs_resume_and_keeps_its_parts(folder, tmp_path, capsys, monkeypatch):
    out = tmp_path / "p"
    real_commit = pack_mod._State.commit

    def commit_then_die(self, split, part):
        real_commit(self, split, part)
        if split == "val":
            raise KeyboardInterrupt  # as a kill after the train parts and the first val part

    monkeypatch.setattr(pack_mod._State, "commit", commit_then_die)
    assert _run(["data", "pack", str(folder), "--out", str(out), "--part-size", "3"], capsys)[0] == 130
    monkeypatch.setattr(pack_mod._State, "commit", real_commit)
    before = _files(out)
    _one_line_error(["data", "pack", str(folder), "--out", str(out)], capsys, str(out), "--resume")
    _one_line_error(["data", "pack", "simeo", "--out", str(out), "--resume"], capsys, str(out),
                    "interrupted pack of", "another --out")
    labels = (folder / "labels.csv").read_text()
    (folder / "labels.csv").write_text("".join(ln for ln in labels.splitlines(True) if "patch_007" not in ln))
    _one_line_error(["data", "pack", str(folder), "--out", str(out), "--resume"], capsys, str(folder),
                    "split test has 1 samples, 2 when", "source changed")
    (folder / "labels.csv").write_text(labels)
    assert _files(out) == before  # nothing already packed was lost
    code, text, _ = _run(
        ["data", "pack", str(folder), "--out", str(out), "--part-size", "3", "--resume"], capsys
    )
    assert "train 4, val 2, test 2" in text and "2 sample(s) this run" in text  # only test was left
    import pandas as pd

    ids = pd.read_parquet(out / "labels.parquet")["id"].tolist()
    assert sorted(ids) == [f"patch_{i:03d}" for i in range(8)]


def test_mixed_patch_sizes_name_the_first_sample_that_differs(folder, tmp_path, capsys):
    rng = np.random.default_rng(0)
    for mod, c, dtype in (("s2", 12, np.uint16), ("s1", 2, np.float32), ("dem", 1, np.float32)):
        _write(folder / mod / "patch_004.tif", rng.integers(1, 100, (c, 12, 12)).astype(dtype))
    _one_line_error(["data", "pack", str(folder), "--out", str(tmp_path / "p")], capsys,
                    str(folder), "patch_004", "12, 12)", "8, 8)", "patch_000", "mixed patch sizes")


def test_strict_names_the_corrupt_item(folder, tmp_path, capsys):
    bad = folder / "s1" / "patch_005.tif"
    bad.write_bytes(bad.read_bytes()[:300])
    _one_line_error(["data", "pack", str(folder), "--out", str(tmp_path / "p"), "--strict"], capsys,
                    str(bad), "--strict")
    code, text, _ = _run(["data", "pack", str(folder), "--out", str(tmp_path / "q")], capsys)
    assert "skipped 1 corrupt item(s) (see skipped.csv)" in text and "train 3" in text


def test_pack_a_torchgeo_dataset_by_name_and_root(tmp_path, capsys):
    from make_eurosat import write_eurosat

    from eoreps.data.datasets.torchgeo import open_torchgeo
    from eoreps.data.pack import check_manifest, verify_pack

    root = write_eurosat(tmp_path / "eurosat", per_class=3, side=8, seed=1)
    out = tmp_path / "p"
    code, text, _ = _run(["data", "pack", str(root), "--torchgeo", "EuroSAT", "--out", str(out)], capsys)
    assert "(torchgeo:EuroSAT)" in text and "train 10, val 10, test 10" in text
    man = check_manifest(out)
    assert (
        man["task"] == "single"
        and man["classes"][0] == "AnnualCrop"
        and man["modalities"]["s2_l1c"]["shape"] == [13, 8, 8]
    )
    assert verify_pack(out, samples=30).compared == 30  # every sample equals the torchgeo wrapper's
    assert len(open_torchgeo("EuroSAT", root=str(root), split="val")) == 10
