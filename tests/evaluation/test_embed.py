"""``eoreps embed``: the embedding folder of a pretrained run (SimEO, synthetic), and its one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from eoreps.cli import main
from eoreps.evaluation.embedding_store import EmbeddingFolder


@pytest.fixture(scope="module")
def simeo_small() -> Path:
    from eoreps.data.simeo.io import cached_simeo

    return cached_simeo(n=320, seed=0, scenes=3, scene_size=96)  # the folder of tests/ssl (same cache)


@pytest.fixture(scope="module")
def mm_run(simeo_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from eoreps.ssl.pretrain import PretrainConfig, run_pretrain

    out = tmp_path_factory.mktemp("mm")
    run_pretrain(PretrainConfig(method="multimodal", data=str(simeo_small), modalities=["s2", "s1"],
                                backbone="cnn-tiny", quick=True, out=str(out), batch_size=16, max_samples=32,
                                monitor_samples=16, knn=False, accelerator="cpu"))
    return out


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main(argv)
    return int(e.value.code or 0), capsys.readouterr().err


def test_embed_writes_the_spec_folder(mm_run: Path, simeo_small: Path, tmp_path: Path, capsys) -> None:
    emb = tmp_path / "emb"
    code, err = _run(["embed", "--backbone", str(mm_run), "--data", str(simeo_small), "--out", str(emb),
                      "--splits", "train,test", "--max-samples", "10", "--batch-size", "4"], capsys)
    assert code == 0, err
    index = json.loads((emb / "embed.json").read_text())
    assert index["format"] == "eoreps-embeddings" and index["version"] == 1
    assert index["run"] == str(mm_run.resolve()) and len(index["run_id"]) == 16
    assert index["method"] == "multimodal" and index["modalities"] == ["s2", "s1"]
    assert index["spaces"]["joint"] == {"s2": 128, "s1": 128} and set(index["spaces"]["backbone"]) == {
        "s2",
        "s1",
    }
    assert index["splits"] == {"train": 10, "test": 10} and index["synthetic"] is True
    assert index["classes"][0] == "forest"
    meta = pd.read_parquet(emb / "meta.parquet")
    assert list(meta["row"]) == list(range(20)) and list(meta["split"]) == ["train"] * 10 + ["test"] * 10
    assert {"id", "label", "label_name", "labels", "season", "doy", "region"} <= set(meta.columns)
    assert set(meta["season"]) <= {"winter", "spring", "summer", "autumn"}
    assert all(index["classes"][i] == n for i, n in zip(meta["label"], meta["label_name"], strict=True))
    # the arrays are the exported encoders' embeddings of those samples, normalised as the cards say
    from eoreps.data.formats import open_dataset
    from eoreps.ssl.export import load_encoders

    enc = load_encoders(mm_run)
    test = open_dataset(str(simeo_small), split="test", modalities=["s2", "s1"])
    pos = {test[i]["id"]: i for i in range(len(test))}
    rows = meta.index[meta["split"] == "test"]
    samples = [test[pos[i]] for i in meta.loc[rows, "id"]]
    batch = {m: torch.stack([s[m] for s in samples]) for m in ("s2", "s1")}
    for space in ("backbone", "joint"):
        for m in ("s2", "s1"):
            arr = np.load(emb / f"{space}_{m}.npy")
            assert arr.dtype == np.float32 and arr.shape == (20, index["spaces"][space][m])
            np.testing.assert_allclose(arr[rows], enc.embed(batch, m, space).numpy(), rtol=1e-4, atol=1e-5)
    thumbs = np.load(emb / "thumbs" / "s2.npy")
    assert thumbs.dtype == np.uint8 and thumbs.shape == (20, 3, 32, 32) and thumbs.max() > 200
    folder = EmbeddingFolder.open(emb)  # what `eoreps retrieve` reads
    assert folder.array("joint", "s1").shape == (20, 128) and folder.thumbs("s1") is not None


def test_space_backbone_only_and_one_modality(
    mm_run: Path, simeo_small: Path, tmp_path: Path, capsys
) -> None:
    emb = tmp_path / "emb"
    code, err = _run(["embed", "--backbone", str(mm_run), "--data", str(simeo_small), "--out", str(emb),
                      "--splits", "val", "--modalities", "s1", "--space", "backbone", "--quick",
                      "--thumbnails", "off"], capsys)
    assert code == 0, err
    index = json.loads((emb / "embed.json").read_text())
    assert index["spaces"] == {"backbone": {"s1": 32}} and index["smoke"] is True
    assert sorted(p.name for p in emb.iterdir()) == ["backbone_s1.npy", "embed.json", "meta.parquet"]


def _no_heads(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("head_*", "checkpoints"))
    index = json.loads((dest / "encoders.json").read_text())
    index.pop("heads")
    (dest / "encoders.json").write_text(json.dumps(index))
    return dest


@pytest.mark.parametrize("kind", ["modality", "empty-split", "no-encoders", "out-file", "no-joint"])
def test_bad_input_is_one_line(kind: str, mm_run: Path, simeo_small: Path, tmp_path: Path, capsys,
                               monkeypatch) -> None:
    run, out, extra, named = mm_run, tmp_path / "emb", [], mm_run
    if kind == "modality":
        extra = ["--modalities", "dem"]
    elif kind == "empty-split":
        import eoreps.data.formats as formats

        real = formats.open_dataset
        monkeypatch.setattr(formats, "open_dataset", lambda spec, split, *a, **k: torch.utils.data.Subset(
            real(spec, split, *a, **k), []) if split == "val" else real(spec, split, *a, **k))
        extra, named = ["--splits", "train,val"], simeo_small
    elif kind == "no-encoders":
        run = named = tmp_path / "empty"
        run.mkdir()
    elif kind == "out-file":
        out = named = tmp_path / "file.txt"
        out.write_text("x")
    else:
        run = named = _no_heads(mm_run, tmp_path / "old")
        extra = ["--space", "joint"]
    code, err = _run(["embed", "--backbone", str(run), "--data", str(simeo_small), "--out", str(out),
                      "--max-samples", "4", *extra], capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("eoreps: error: ") and str(named) in lines[0], lines[0]


def test_thumbnails_use_true_and_false_colour_bands() -> None:
    from eoreps.evaluation.embed import thumbnails

    s2_bands = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
    x = torch.zeros(2, 12, 40, 40)
    x[:, 3, :, 20:] = 1000.0  # B04 (red) bright on the right half only
    x[1, :, :5] = float("nan")  # no data -> black
    t = thumbnails(x, "s2", s2_bands)
    assert t.shape == (2, 3, 32, 32) and t.dtype == np.uint8
    assert t[0, 0, :, 20:].min() == 255 and t[0, 1:].max() == 0 and t[0, 0, :, :12].max() == 0
    assert t[1, :, :3].max() == 0
    s1 = torch.stack([torch.full((16, 16), -10.0), torch.linspace(-25, -15, 16).expand(16, 16)])[None]
    f = thumbnails(s1, "s1", ["VV", "VH"])  # VV, VH, VV - VH: the VH gradient shows in G (and inverted in B)
    assert f[0, 1, 0, -1] > f[0, 1, 0, 0] and f[0, 2, 0, -1] < f[0, 2, 0, 0]


def test_sample_metadata_from_ids_and_day_of_year() -> None:
    from eoreps.evaluation.embed import sample_meta

    ben = sample_meta({"id": "S2A_MSIL2A_20171221T112501_N9999_R037_T29SND_47_45",
                       "multilabel": torch.tensor([0.0, 1.0, 1.0])})
    assert ben == {"id": "S2A_MSIL2A_20171221T112501_N9999_R037_T29SND_47_45", "multilabel": [1, 2],
                   "date": "2017-12-21", "season": "winter"}
    sim = sample_meta({"id": "simeo-p000001", "label": torch.tensor(3), "doy": torch.tensor(200),
                       "region": torch.tensor(2)})
    assert sim == {"id": "simeo-p000001", "label": 3, "region": 2, "doy": 200, "season": "summer"}


def test_embed_plot_draws_one_map_per_modality(mm_run: Path, simeo_small: Path, tmp_path: Path,
                                               capsys) -> None:
    emb = tmp_path / "emb"
    with pytest.raises(SystemExit) as e:
        main(["embed", "--backbone", str(mm_run), "--data", str(simeo_small), "--out", str(emb),
              "--splits", "test", "--max-samples", "12", "--plot"])
    assert e.value.code in (0, None)
    out = capsys.readouterr().out
    for name in ("map_joint_s2.png", "map_joint_s1.png"):  # the joint space where the run has one
        assert f"map: {emb / name}" in out and (emb / name).read_bytes()[:4] == b"\x89PNG"
