"""``loader="stream"`` (the default): a source that is not packed (here a SimEO folder) is packed once into
the cache and streamed by the code that streams user packs; ``loader="memory"`` reads the same samples."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from eoreps.cli import main

COMMON = ["--modalities", "s2,s1", "--quick", "--seed", "0"]
PRETRAIN = ["pretrain", "--method", "simclr", "--backbone", "cnn-tiny", "--batch-size", "16", "--max-samples",
            "48", "--no-knn", "--accelerator", "cpu", *COMMON]


@pytest.fixture(scope="module")
def simeo(tmp_path_factory) -> Path:
    """A small SimEO folder (synthetic, 32 px patches), not packed."""
    from eoreps.data.simeo.io import write_simeo

    return write_simeo(tmp_path_factory.mktemp("src") / "simeo", n=160, seed=0)


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def cache(cache_root, monkeypatch) -> Path:
    """``EOREPS_CACHE`` of this module: the packs made here, shared by its tests."""
    monkeypatch.setenv("EOREPS_CACHE", str(cache_root))
    return cache_root


def _run(args: list[str], code: int = 0) -> None:
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == code


def _manifests(cache: Path) -> list[Path]:
    return sorted((cache / "packs").glob("*/eoreps_pack.json"))


def test_default_runs_pack_once_then_stream(simeo, cache, tmp_path, capsys):
    """(a) pretrain and evaluate on a SimEO folder stream one cached pack; --crop works on it (c)."""
    pre = tmp_path / "pre"
    _run([*PRETRAIN, "--data", str(simeo), "--crop", "16", "--out", str(pre)])
    (manifest,) = _manifests(cache)
    stamp = manifest.stat().st_mtime_ns
    rec = json.loads((pre / "pretrain.json").read_text())
    assert rec["loader"] == "stream" and rec["crop"] == "random 16 px" and rec["data"]["streamed"] is True
    assert rec["data"]["pack"] == str(manifest.parent) and rec["data"]["data"] == str(simeo)
    assert rec["data"]["synthetic"] is True and rec["config"]["loader"] == "stream"
    assert rec["data"]["num_samples"] == 48 and rec["steps"] == 48 // 16  # --max-samples, none lost
    ev = tmp_path / "ev"
    _run(["evaluate", "--data", str(simeo), "--backbone", str(pre), "--protocol", "knn", "--fractions", "1.0",
          "--seeds", "1", *COMMON, "--out", str(ev)])
    assert "loader: stream" in capsys.readouterr().out
    assert json.loads((ev / "study.json").read_text())["config"]["data"]["loader"] == "stream"
    assert _manifests(cache) == [manifest] and manifest.stat().st_mtime_ns == stamp  # reused, not re-packed


def test_memory_and_stream_read_the_same_samples(simeo, cache):
    """(b) evaluation splits, pretraining patches and fit samples: same ids and tensors either way."""
    from eoreps.evaluation.data import load_eval_data
    from eoreps.ssl.data import load_patches
    from eoreps.ssl.pretrain import PretrainConfig
    from eoreps.tasks.fit import build
    from eoreps.tasks.fit_config import FitConfig

    for task in ("classify", "segment"):
        mem = load_eval_data(str(simeo), task, ["s2", "s1"], limits={"train": 40}, loader="memory", crop=16)
        st = load_eval_data(str(simeo), task, ["s2", "s1"], limits={"train": 40}, loader="stream", crop=16)
        assert mem.classes == st.classes and mem.synthetic and st.synthetic
        for s in ("train", "val", "test"):
            a, b = mem.splits[s], st.splits[s]
            assert a.ids == b.ids and len(a.ids) > 0 and torch.equal(a.target, b.target)
            for m in ("s2", "s1"):
                assert a.inputs[m].shape[-2:] == (16, 16)
                torch.testing.assert_close(a.inputs[m], b.inputs[m], rtol=0, atol=0, equal_nan=True)
    patches = []
    for ld in ("memory", "stream"):
        data, options = PretrainConfig(data=str(simeo), modalities=["s2", "s1"], loader=ld).source()
        patches.append(load_patches(data, ["s2", "s1"], max_samples=24, seed=1, options=options))
    pm, ps = patches
    assert torch.equal(pm.labels, ps.labels) and ps.info["dataset"] == "PackedDataset"
    for m in ("s2", "s1"):
        torch.testing.assert_close(pm.images[m], ps.images[m], rtol=0, atol=0, equal_nan=True)
    mods = ["s2", "s1", "landcover"]
    fits = {ld: build(FitConfig(data=str(simeo), modalities=mods, loader=ld, label_fraction=0.5))[1]
            for ld in ("memory", "stream")}
    assert len(fits["memory"].train_set) == len(fits["stream"].train_set) > 0
    from eoreps.tasks.data import regression_stats  # the pack's from labels.parquet, without an image read

    mem_set, stream_set = fits["memory"].train_set.dataset, fits["stream"].train_set.dataset
    assert regression_stats(mem_set) == regression_stats(stream_set)
    for i in (0, len(fits["memory"].train_set) - 1):
        a, b = fits["memory"].train_set[i], fits["stream"].train_set[i]
        assert sorted(a) == sorted(b) and a["id"] == b["id"]
        for k, v in a.items():
            if isinstance(v, torch.Tensor):
                torch.testing.assert_close(v, b[k], rtol=0, atol=0, equal_nan=True, check_dtype=True)


def test_memory_loader_crops_each_batch_at_random(simeo, cache, tmp_path):
    """(c) --crop on a source read into memory: a random window per sample, the same in every modality."""
    from eoreps.ssl.data import BatchDataset, load_patches

    train = load_patches(str(simeo), ["s2", "s1"], max_samples=16, seed=0)
    ds = BatchDataset(train, crop=12, seed=0)
    assert ds.image_size == (12, 12)
    b = ds.__getitems__(list(range(8)))
    corners = []
    for k in range(8):
        full = {m: train.images[m][k] for m in ("s2", "s1")}
        hits = [(y, x) for y in range(21) for x in range(21)
                if torch.equal(full["s2"][:, y:y + 12, x:x + 12].nan_to_num(), b["s2"][k].nan_to_num())]
        assert hits, "the crop is not a window of its sample"
        y, x = hits[0]
        assert torch.equal(full["s1"][:, y:y + 12, x:x + 12].nan_to_num(), b["s1"][k].nan_to_num())
        corners.append(hits[0])
    assert len(set(corners)) > 1  # random windows, not the centre
    out = tmp_path / "mem"
    _run([*PRETRAIN, "--data", str(simeo), "--loader", "memory", "--crop", "16", "--out", str(out)])
    rec = json.loads((out / "pretrain.json").read_text())
    assert rec["loader"] == "memory" and rec["crop"] == "random 16 px" and "pack" not in rec["data"]


def test_damaged_cached_pack_is_one_line(simeo, tmp_path, monkeypatch, capsys):
    """(d) a truncated chunk of a cached pack: exit 2, one line naming the chunk and the folder to delete."""
    from eoreps.data.pack_cache import packed_source

    monkeypatch.setenv("EOREPS_CACHE", str(tmp_path / "cache"))
    root = Path(packed_source(str(simeo)).data)
    chunk = sorted((root / "train").glob("chunk-*.bin"))[0]
    with open(chunk, "r+b") as f:
        f.truncate(chunk.stat().st_size // 2)
    capsys.readouterr()
    _run(["evaluate", "--data", str(simeo), "--protocol", "knn", *COMMON, "--out", str(tmp_path / "e")],
         code=2)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert str(chunk) in lines[0] and f"delete {root}" in lines[0]
    shutil.rmtree(root)  # deleting it is the fix: the next run packs it again
    assert Path(packed_source(str(simeo)).data) == root and (root / "eoreps_pack.json").is_file()


def test_cached_packs_of_vanished_sources_are_pruned(tmp_path, monkeypatch):
    from eoreps.data.pack_cache import packed_source
    from eoreps.data.simeo.io import write_simeo

    monkeypatch.setenv("EOREPS_CACHE", str(tmp_path / "cache"))
    gone = Path(packed_source(str(write_simeo(tmp_path / "a", n=40, seed=0))).data)
    shutil.rmtree(tmp_path / "a")
    kept = Path(packed_source(str(write_simeo(tmp_path / "b", n=40, seed=1))).data)
    assert not gone.exists() and (kept / "eoreps_pack.json").is_file()
    assert sorted(p.name for p in (tmp_path / "cache" / "packs").iterdir() if p.is_dir()) == [kept.name]


def test_a_pack_killed_before_its_rename_or_its_resume_state_is_recovered(simeo, tmp_path, monkeypatch):
    """A kill (a) after the manifest, before ``<key>.partial`` was renamed: the next run renames it, without
    packing again; (b) after ``.pack_state/`` was made, before ``state.json``: the next run packs afresh."""
    import eoreps.data.pack as pack_module
    from eoreps.data.pack_cache import packed_source
    from eoreps.data.pack_manifest import STATE_DIR

    monkeypatch.setenv("EOREPS_CACHE", str(tmp_path / "cache"))
    root = Path(packed_source(str(simeo)).data)
    partial = root.with_name(root.name + ".partial")
    manifest = (root / "eoreps_pack.json").read_text()
    root.rename(partial)  # (a) and a resume state still beside the manifest (killed inside the finish)
    (partial / STATE_DIR).mkdir()
    (partial / STATE_DIR / "state.json").write_text("{}")
    with monkeypatch.context() as m:
        m.setattr(pack_module, "pack", lambda opts: pytest.fail("packed a complete pack again"))
        assert Path(packed_source(str(simeo)).data) == root
    assert (root / "eoreps_pack.json").read_text() == manifest and not partial.exists()
    assert not (root / STATE_DIR).exists()
    shutil.rmtree(root)
    (partial / STATE_DIR).mkdir(parents=True)  # (b) no state.json, no manifest
    (partial / "train").mkdir()
    assert Path(packed_source(str(simeo)).data) == root and not partial.exists()
    assert json.loads((root / "eoreps_pack.json").read_text())["splits"] == json.loads(manifest)["splits"]


def test_pruning_leaves_a_pack_whose_lock_is_held(tmp_path):
    """A pack of a vanished source that another process is packing (it holds ``<key>.lock``) is kept."""
    from filelock import FileLock

    from eoreps.data.pack_cache import _prune
    from eoreps.data.pack_manifest import MANIFEST, STATE_DIR

    record = json.dumps({"source": {"path": str(tmp_path / "gone"), "format": "simeo-folder"}})
    (tmp_path / "a" / STATE_DIR).mkdir(parents=True)
    (tmp_path / "a" / MANIFEST).write_text(record)
    (tmp_path / "b.partial" / STATE_DIR).mkdir(parents=True)
    (tmp_path / "b.partial" / STATE_DIR / "state.json").write_text(record)
    with FileLock(str(tmp_path / "b.lock")):  # another run packing b
        _prune(tmp_path)
        assert not (tmp_path / "a").exists() and (tmp_path / "b.partial").is_dir()
    with FileLock(str(tmp_path / "a.lock")):  # a complete pack's lock guards it too
        (tmp_path / "a").mkdir()
        (tmp_path / "a" / MANIFEST).write_text(record)
        _prune(tmp_path)
        assert (tmp_path / "a").is_dir() and not (tmp_path / "b.partial").exists()


def test_tile2vec_streams_triplets_from_a_pack(simeo, cache):
    """Tile2Vec on a pack: the batch's whole patches are the scenes, cut into triplets in the loader."""
    from eoreps.data.pack_cache import packed_source
    from eoreps.ssl.data import StreamedTriplets
    from eoreps.ssl.pretrain import PretrainConfig, build_data

    pack = packed_source(str(simeo)).data
    cfg = PretrainConfig(method="tile2vec", data=pack, modalities=["s2", "s1"], backbone="cnn-tiny",
                         method_kwargs={"tile_size": 16, "neighborhood": 4}, knn=False, quick=True).resolved()
    md, monitor, _ = build_data(cfg)
    assert isinstance(md.dataset, StreamedTriplets) and md.image_size == (16, 16)
    assert md.train.info["loader"] == "stream" and monitor.image_size == (16, 16)
    batch = next(iter(md.dataset.loader(8)))
    for part in ("anchor", "neighbor", "distant"):
        shapes = {m: tuple(x.shape) for m, x in batch[part].items()}
        assert shapes == {"s2": (8, 12, 16, 16), "s1": (8, 2, 16, 16)}
    assert not torch.equal(batch["anchor"]["s2"].nan_to_num(), batch["distant"]["s2"].nan_to_num())


def test_evaluation_subsets_are_chosen_from_the_pack_labels(simeo, cache, monkeypatch):
    """With limits, the stratified choice comes from labels.parquet: only the chosen images are read, and
    they are the ones the memory loader keeps."""
    from eoreps.data.datasets.packed import PackedDataset
    from eoreps.evaluation.data import load_eval_data

    limits = {"train": 20, "val": 10, "test": 10}
    mem = load_eval_data(str(simeo), "classify", ["s2"], limits=limits, loader="memory")
    read: list[str] = []
    real = PackedDataset.__getitem__
    monkeypatch.setattr(PackedDataset, "__getitem__",
                        lambda self, i: read.append(self.split) or real(self, i))
    st = load_eval_data(str(simeo), "classify", ["s2"], limits=limits, loader="stream")
    assert {s: read.count(s) for s in limits} == limits
    assert all(mem.splits[s].ids == st.splits[s].ids for s in limits)
    fr = st.fraction_indices([0.25, 1.0], seed=0)
    assert set(fr[0.25]) < set(fr[1.0]) and len(fr[1.0]) == 20


def test_stream_state_loads_with_weights_only(simeo, cache):
    """With max_samples (LitData's subsample) the loader state went into checkpoints with NumPy integers,
    which --resume's torch.load(weights_only=True) refused."""
    import io

    from eoreps.data.datasets.packed import PackedDataset
    from eoreps.data.pack_cache import packed_source
    from eoreps.ssl.data import StreamedPatches

    packed = PackedDataset(packed_source(str(simeo)).data, "train", ["s2"])
    loader = StreamedPatches(packed, ["s2"], None, seed=0, max_samples=40).loader(8)
    next(iter(loader))
    buf = io.BytesIO()
    torch.save(loader.state_dict(), buf)
    buf.seek(0)
    assert torch.load(buf, weights_only=True)["dataset"]["region_of_interest"]


def test_study_loader_from_yaml_and_command_line(tmp_path):
    """The study reads ``data: loader:`` from its YAML; ``--loader`` replaces it; a bad name is one line."""
    from eoreps.errors import ConfigError
    from eoreps.evaluation.study_options import StudyOptions

    yaml = tmp_path / "study.yaml"
    yaml.write_text(
        "name: t\ndata:\n  data: simeo\n  loader: memory\nbackbones: [random]\nprotocols: [knn]\n"
    )
    assert StudyOptions(config=yaml).load().data.loader == "memory"
    assert StudyOptions(config=yaml, loader="stream").load().data.loader == "stream"
    with pytest.raises(ConfigError, match="unknown loader 'disk'"):
        StudyOptions(config=yaml, loader="disk").load()


@pytest.mark.parametrize("method", ["simclr", "tile2vec"])
def test_a_pack_given_with_loader_memory_is_held_in_memory(simeo, cache, method):
    """``--data PACK --loader memory``: the pack is read into memory as asked (it used to stream anyway)."""
    import dataclasses

    from eoreps.data.pack_cache import packed_source
    from eoreps.ssl.data import BatchDataset, StreamedPatches, TripletDataset
    from eoreps.ssl.pretrain import PretrainConfig, build_data

    pack = packed_source(str(simeo)).data
    kwargs = {"tile_size": 16, "neighborhood": 4} if method == "tile2vec" else {}
    cfg = PretrainConfig(method=method, data=pack, modalities=["s2", "s1"], backbone="cnn-tiny",
                         loader="memory", method_kwargs=kwargs, knn=False, quick=True,
                         max_samples=48).resolved()
    md, _, _ = build_data(cfg)
    assert isinstance(md.dataset, TripletDataset if method == "tile2vec" else BatchDataset)
    if method == "simclr":
        assert md.train.info["loader"] == "memory" and len(md.dataset) == 48
        stream, _, _ = build_data(dataclasses.replace(cfg, loader="stream"))
        assert isinstance(stream.dataset, StreamedPatches)  # the default still streams the pack
