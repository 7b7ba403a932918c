"""End to end through the CLI on a user's own GeoTIFF folder, as docs/data.md shows it.

The folder has what real ones have: a ``sample_id`` header, text labels, no split column, sparse
land-cover mask codes (0-4 and 8) with a 255 no-data code, and one sample whose s1 is all no-data.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from eoreps.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_geotiff_folder as gen  # noqa: E402

NAMES = ("water", "trees", "grass", "crops", "built", "bare")  # codes 0, 1, 2, 3, 4, 8


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = gen.write_geotiff_folder(tmp_path_factory.mktemp("own") / "my_fields", n=24, side=8, mask=True,
                                    id_header="sample_id", split=False, mask_codes=(0, 1, 2, 3, 4, 8),
                                    mask_nodata=255, empty_s1=(5,))
    (root / "mask_classes.txt").write_text(
        "".join(f"{c} {n}\n" for c, n in zip((0, 1, 2, 3, 4, 8), NAMES, strict=True))
    )
    return root


def cli(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(args)
    out, err = capsys.readouterr()
    return int(e.value.code or 0), out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("eoreps: error: ") and all(n in lines[0] for n in needles), lines[0]


def test_own_folder_end_to_end(folder, tmp_path, capsys):
    code, out, _ = cli(["data", "inspect", str(folder)], capsys)
    assert code == 0 and "mask classes (6;" in out and "bare" in out and "patch_005  s1" in out

    code, _, err = cli(
        ["fit", "--data", str(folder), "--quick", "--modalities", "s2,s1", "--out", str(tmp_path / "f")],
        capsys,
    )
    assert_one_line_error(code, err, str(folder / "s1" / "patch_005.tif"), "--skip-nodata")

    code, out, _ = cli(["fit", "--data", str(folder), "--quick", "--modalities", "s2,s1", "--skip-nodata",
                        "--seed", "3", "--out", str(tmp_path / "cls")], capsys)
    assert code == 0 and "left out 1 samples that are entirely no-data" in out
    data = json.loads((tmp_path / "cls" / "results.json").read_text())["data"]
    assert data["classes"] == ["crops", "forest", "urban", "water"] and data["id_column"] == "sample_id"
    assert data["splits"] == {"source": "automatic, stratified", "ratios": [0.7, 0.15, 0.15], "seed": 3,
                              "counts": {"train": 17, "val": 3, "test": 4}}
    assert sum(data["skipped_nodata"].values()) == 1 and sum(data["samples"].values()) == 23

    code, out, _ = cli(["fit", "--task", "segment", "--data", str(folder), "--quick", "--modalities", "s2",
                        "--out", str(tmp_path / "seg")], capsys)
    assert code == 0 and "segment/miou" in out
    data = json.loads((tmp_path / "seg" / "results.json").read_text())["data"]
    assert data["mask_classes"] == list(NAMES) and data["mask_codes"] == [0, 1, 2, 3, 4, 8]
    assert data["mask_ignored_pixels"]["ignored_pixels"] == 24 * 4  # the 255 corner of every mask

    pre = tmp_path / "pre"
    code, _, _ = cli(
        [
            "pretrain",
            "--method",
            "simclr",
            "--data",
            str(folder),
            "--quick",
            "--modalities",
            "s2",
            "--batch-size",
            "8",
            "--out",
            str(pre),
        ],
        capsys,
    )
    assert code == 0
    info = json.loads((pre / "pretrain.json").read_text())["data"]
    assert (
        info["classes"] == ["crops", "forest", "urban", "water"] and info["splits"]["counts"]["train"] == 17
    )

    ev = tmp_path / "ev"
    code, out, _ = cli(
        [
            "evaluate",
            "--backbone",
            str(pre),
            "--data",
            str(folder),
            "--quick",
            "--modalities",
            "s2",
            "--seeds",
            "1",
            "--out",
            str(ev),
        ],
        capsys,
    )
    assert code == 0 and "| crops | forest | urban | water |" in out
    cells = [json.loads(p.read_text()) for p in (ev / "cells").glob("*.json")]
    assert cells and all(c["classes"] == ["crops", "forest", "urban", "water"] for c in cells)


def test_own_folder_cli_errors(folder, tmp_path, capsys):
    code, _, err = cli(["fit", "--data", str(folder), "--quick", "--split-ratios", "0.9,0.2,0.1",
                        "--out", str(tmp_path / "x")], capsys)
    assert_one_line_error(code, err, "0.9, 0.2, 0.1", "--split-ratios 0.7,0.15,0.15")
    code, _, err = cli(
        ["fit", "--data", "simeo", "--quick", "--skip-nodata", "--out", str(tmp_path / "y")], capsys
    )
    assert_one_line_error(code, err, "skip_nodata", "not --data simeo")
    code, _, err = cli(["data", "inspect", str(folder), "--id-column", "patch"], capsys)
    assert_one_line_error(code, err, str(folder / "labels.csv"), "'patch'")
    bad = tmp_path / "bad"
    gen.write_geotiff_folder(bad, n=4, side=4)
    csv = bad / "labels.csv"
    csv.write_text(csv.read_text().replace("water", "", 1))
    code, _, err = cli(["data", "inspect", str(bad)], capsys)
    assert_one_line_error(code, err, str(csv), "row 2", "empty label")
