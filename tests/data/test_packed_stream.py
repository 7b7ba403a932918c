"""Reading a packed archive (``eoreps data pack``): map-style access, labels and statistics from the
manifest, LitData streaming (rank-disjoint under DDP, resumable mid-epoch) and the commands on it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from make_packed import make_packed  # noqa: E402

from eoreps.data.datasets.base import EODataset  # noqa: E402
from eoreps.data.formats import detect_format, open_dataset  # noqa: E402
from eoreps.data.loader_workers import ENV as WORKERS_ENV  # noqa: E402


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> Path:
    return make_packed(tmp_path_factory.mktemp("pack") / "simeo_pack", n=120)


def _source(packed: Path) -> Path:
    return packed.parent / f"{packed.name}_simeo"


def _cli(args: list[str]) -> None:
    from eoreps.cli import main

    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 0


def _ids(loader) -> list[str]:
    return [i for batch in loader for i in batch["id"]]


def test_open_packed_matches_source(packed):
    assert detect_format(packed) == "packed"
    ds = open_dataset(packed, split="val")
    src = open_dataset(_source(packed), split="val", modalities=["s2", "s1"])
    assert len(ds) == len(src) and ds.modalities == ("s2", "s1") and ds.task == src.task
    assert ds.classes == src.classes and ds.band_names["s2"] == src.band_names["s2"]
    for i in (0, len(ds) - 1):
        a, b = ds[i], src[i]
        assert a["id"] == b["id"] and int(a["label"]) == int(b["label"])
        assert a["s2"].dtype == torch.float32 and a["s2"].shape == b["s2"].shape
        torch.testing.assert_close(a["s1"], torch.as_tensor(b["s1"], dtype=torch.float32), equal_nan=True)
    every = open_dataset(packed, split="all")
    splits = json.loads((packed / "eoreps_pack.json").read_text())["splits"]
    assert len(every) == sum(len(open_dataset(packed, split=s)) for s in splits) == sum(splits.values())


def test_labels_and_fractions_from_parquet(packed):
    """(e) label fractions from labels.parquet = those from labels read image by image."""
    from eoreps.data.splits import label_fraction_indices

    ds = open_dataset(packed, split="train")
    fast = ds.label_matrix()
    slow = EODataset.label_matrix(ds)  # the base class reads every sample
    assert torch.equal(fast, slow)
    fr = (0.1, 0.5, 1.0)
    a, b = label_fraction_indices(fast, fr, seed=3), label_fraction_indices(slow, fr, seed=3)
    assert all(np.array_equal(a[f], b[f]) for f in fr)
    assert set(a[0.1]) <= set(a[0.5]) <= set(a[1.0])


def test_stats_come_from_the_manifest(packed, tmp_path, monkeypatch):
    import eoreps.data.stats as stats

    ds = open_dataset(packed, split="train")
    monkeypatch.setattr(stats, "compute_stats", lambda *a, **k: pytest.fail("re-scanned a packed archive"))
    st = stats.cached_stats(ds, tmp_path, modalities=["s1"])
    man = json.loads((packed / "eoreps_pack.json").read_text())
    assert st.modalities == ("s1",)
    # the training split's statistics (normalisation never sees val / test / shifted samples)
    np.testing.assert_allclose(st.mean["s1"], man["train_stats"]["s1"]["mean"])
    np.testing.assert_allclose(st.std["s1"], man["train_stats"]["s1"]["std"])
    s1 = np.stack([ds[i]["s1"].numpy() for i in range(len(ds))]).astype(np.float64)
    np.testing.assert_allclose(st.mean["s1"], np.nanmean(s1, axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(st.std["s1"], np.nanstd(s1, axis=(0, 2, 3)), rtol=1e-5)


def test_a_pack_without_train_stats_is_scanned_unless_it_holds_one_split(packed, tmp_path, monkeypatch):
    """Packs written before ``train_stats`` existed (same format version): their ``stats`` cover every
    split, so the training split is scanned; a single-split pack's ``stats`` are that split's."""
    import eoreps.data.stats as stats

    ds = open_dataset(packed, split="train")
    old = {k: v for k, v in ds.manifest.items() if k != "train_stats"}
    assert len([n for n in old["splits"].values() if n]) >= 2
    monkeypatch.setattr(ds, "manifest", old)
    assert ds.precomputed_stats is None
    scanned = stats.cached_stats(ds, tmp_path, modalities=["s1"])
    s1 = np.stack([ds[i]["s1"].numpy() for i in range(len(ds))]).astype(np.float64)
    np.testing.assert_allclose(scanned.mean["s1"], np.nanmean(s1, axis=(0, 2, 3)), rtol=1e-5)
    assert not np.allclose(scanned.mean["s1"], old["stats"]["s1"]["mean"], rtol=1e-5)  # not train+val+test
    monkeypatch.setattr(ds, "manifest", {**old, "splits": {"train": len(ds), "val": 0}})
    np.testing.assert_allclose(ds.precomputed_stats.mean["s1"], old["stats"]["s1"]["mean"])


def test_stream_crops_and_covers_the_split(packed):
    from litdata import StreamingDataLoader

    ds = open_dataset(packed, split="train")
    loader = StreamingDataLoader(ds.stream(seed=1, crop=16, keys=("s2", "s1", "label", "id")), batch_size=4)
    batches = list(loader)
    assert batches[0]["s2"].shape == (4, 12, 16, 16) and batches[0]["s1"].shape == (4, 2, 16, 16)
    assert batches[0]["label"].dtype == torch.int64
    ids = [i for b in batches for i in b["id"]]
    assert sorted(ids) == sorted(ds[i]["id"] for i in range(len(ds)))
    again = _ids(StreamingDataLoader(ds.stream(seed=1, keys=("id",)), batch_size=4))
    other = _ids(StreamingDataLoader(ds.stream(seed=2, keys=("id",)), batch_size=4))
    assert again == ids and other != ids  # the order is a function of the seed
    capped = _ids(StreamingDataLoader(ds.stream(seed=1, keys=("id",), max_samples=20), batch_size=4))
    assert len(capped) == len(set(capped)) == 20 and set(capped) <= set(ids)  # --max-samples on a stream


@pytest.mark.parametrize("workers", [0, 2])
def test_a_stream_decodes_only_the_keys_it_returns(packed, workers, monkeypatch):
    """Selective decoding (``decode_only``): the tensors equal the map-style reader's full decode, the
    other stored fields are never deserialized, in the main process and in loader workers."""
    from litdata import StreamingDataLoader
    from litdata.streaming import serializers

    ds = open_dataset(packed, split="train")
    by_id = {ds[i]["id"]: ds[i] for i in range(len(ds))}
    stream = ds.stream(seed=3, keys=("s1", "label", "id"))
    decoded: list[tuple[int, ...]] = []  # shapes of every array the NumPy serializer decodes (worker 0: here)
    real = serializers.NumpySerializer.deserialize
    monkeypatch.setattr(serializers.NumpySerializer, "deserialize",
                        lambda self, data: decoded.append(real(self, data).shape) or real(self, data))
    batches = list(StreamingDataLoader(stream, batch_size=5, num_workers=workers))
    ids = [i for b in batches for i in b["id"]]
    assert sorted(ids) == sorted(by_id)
    for b in batches:
        assert set(b) == {"s1", "label", "id"}
        for k, i in enumerate(b["id"]):
            assert int(by_id[i]["label"]) == int(b["label"][k]) and b["s1"].dtype == torch.float32
            torch.testing.assert_close(b["s1"][k], by_id[i]["s1"], equal_nan=True, rtol=0, atol=0)
    if workers == 0:
        assert stream.decoding_selected  # the loader took the selection
        # only s1 (2 bands) went through the NumPy serializer: no s2, dem, landcover, weather, ...
        assert decoded and {sh[0] for sh in decoded} == {2}, sorted(set(decoded))


def test_decode_only_leaves_an_unknown_loader_or_nested_items_alone():
    from litdata.utilities._pytree import tree_flatten

    from eoreps.data.datasets.packed import decode_only

    class Other:  # a LitData loader without the per-leaf serializer list
        pass

    assert decode_only(Other(), ("s2",)) is False and decode_only(None, ("s2",)) is False

    class Nested:  # an item with a nested field: {s2, meta: {a, b}, label}
        _data_spec = tree_flatten({"s2": 0, "meta": {"a": 1, "b": 2}, "label": 3})[1]
        _serializers_list = ["x", "y", "z", "w"]

    loader = Nested()
    assert decode_only(loader, ("s2",)) is False and loader._serializers_list == ["x", "y", "z", "w"]


def _rank_epoch(rank: int, world: int, root: str, init: str, out: str) -> None:
    import torch.distributed as dist
    from litdata import StreamingDataLoader

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        ds = open_dataset(root, split="train")
        loader = StreamingDataLoader(ds.stream(seed=5, keys=("id",)), batch_size=2)
        epochs = [_ids(loader) for _ in range(2)]
        Path(out, f"rank{rank}.json").write_text(json.dumps(epochs))
    finally:
        dist.destroy_process_group()


def test_ddp_ranks_read_disjoint_parts(packed, tmp_path):
    """(a) 2 processes (gloo, CPU): every sample id exactly once per epoch across the ranks."""
    import torch.multiprocessing as mp

    # fork: the ranks start in a fraction of a second (spawn re-imports torch in each)
    mp.start_processes(
        _rank_epoch,
        args=(2, str(packed), f"file://{tmp_path / 'rdv'}", str(tmp_path)),
        nprocs=2,
        start_method="fork",
    )
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    everything = sorted(open_dataset(packed, split="train").labels_table()["id"])
    for epoch in range(2):
        assert r0[epoch] and r1[epoch] and not set(r0[epoch]) & set(r1[epoch])
        assert sorted(r0[epoch] + r1[epoch]) == everything
    assert r0[0] != r0[1]  # a new shuffle each epoch


@pytest.mark.parametrize("workers", [0, 2])
def test_mid_epoch_resume_continues_the_stream(packed, workers):
    """(b) ids before + after a restart from the loader's state = one uninterrupted epoch, no repeats."""
    from litdata import StreamingDataLoader

    ds = open_dataset(packed, split="train")

    def loader():
        return StreamingDataLoader(ds.stream(seed=7, keys=("id",)), batch_size=4, num_workers=workers)

    full = _ids(loader())
    first = loader()
    before: list[str] = []
    for k, batch in enumerate(first):
        before.extend(batch["id"])
        if k == 4:
            break
    state = json.loads(json.dumps(first.state_dict()))  # what a checkpoint stores
    resumed = loader()
    resumed.load_state_dict(state)
    after = _ids(resumed)
    assert len(before) == 20 and before + after == full and len(set(full)) == len(full)


def test_pretrain_and_evaluate_stream_a_pack(packed, tmp_path, capsys):
    """(c) pretrain --quick streams the pack (random crops), evaluate and fit read it."""
    out = tmp_path / "pt"
    _cli(["pretrain", "--method", "simclr", "--quick", "--data", str(packed), "--out", str(out),
          "--backbone", "cnn-tiny", "--crop", "16", "--batch-size", "8", "--no-knn"])
    rec = json.loads((out / "pretrain.json").read_text())
    assert rec["data"]["streamed"] is True and rec["data"]["crop"] == "random 16 px"
    assert rec["data"]["synthetic"] is True and rec["steps"] == 8
    # num_workers "auto": EOREPS_LOADER_WORKERS=0 in the suite (tests/conftest.py), kept for a resume
    assert rec["config"]["num_workers"] == "auto"
    assert rec["data"]["loader_workers"] == 0
    assert json.loads((out / "loader.json").read_text()) == {"loader_workers": 0, "asked": "auto"}
    ev = tmp_path / "ev"
    _cli(
        [
            "evaluate",
            "--quick",
            "--data",
            str(packed),
            "--backbone",
            str(out),
            "--out",
            str(ev),
            "--crop",
            "24",
            "--fractions",
            "1.0",
            "--seeds",
            "1",
            "--protocol",
            "knn",
        ]
    )
    assert "input: centre crop 24 px" in capsys.readouterr().out
    rows = pd.read_parquet(ev / "results.parquet")
    assert len(rows) > 0 and rows["oa"].between(0, 1).all() and rows["synthetic"].all()
    assert json.loads((ev / "study.json").read_text())["config"]["data"]["crop"] == 24
    fit = tmp_path / "fit"
    _cli(["fit", "--quick", "--data", str(packed), "--out", str(fit)])  # map-style access
    assert json.loads((fit / "results.json").read_text())["data"]["dataset"] == "PackedDataset"


@pytest.mark.parametrize("damage", ["missing", "truncated", "version"])
def test_damaged_chunk_is_one_line(packed, tmp_path, capsys, damage):
    import shutil

    from eoreps.cli import main

    copy = tmp_path / "pack"
    shutil.copytree(packed, copy)
    chunk = sorted((copy / "train").glob("chunk-*.bin"))[1]
    if damage == "version":  # a pack written by another eoreps version
        chunk = copy / "eoreps_pack.json"
        chunk.write_text(chunk.read_text().replace('"eoreps_version": "', '"eoreps_version": "9.'))
    elif damage == "missing":
        chunk.unlink()
    else:
        chunk.write_bytes(chunk.read_bytes()[:100])
    with pytest.raises(SystemExit) as e:
        main(["pretrain", "--method", "simclr", "--quick", "--data", str(copy), "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "Traceback" not in err[0] and chunk.name in err[0]


def test_pretrain_resumes_the_stream_mid_epoch(packed, tmp_path, monkeypatch):
    """(b) end to end: a run stopped after its step-4 checkpoint and resumed streams what the uninterrupted
    run streamed from step 4 on (the StreamingDataLoader state is in the Lightning checkpoint)."""
    import lightning as L

    from eoreps.data.datasets.packed import PackedStream
    from eoreps.ssl.pretrain import PretrainConfig, run_pretrain

    seen: list[str] = []
    getitem = PackedStream.__getitem__

    def recording(self, index):
        seen.append(str(super(PackedStream, self).__getitem__(index)["id"]))
        return getitem(self, index)

    monkeypatch.setattr(PackedStream, "__getitem__", recording)

    class Killed(Exception):
        pass

    class Crash(L.Callback):
        def on_train_batch_start(self, trainer, *args) -> None:
            if trainer.global_step == 5:
                raise Killed  # stands for the kill: nothing after the step-4 checkpoint is saved

    def cfg(out: Path, resume: bool) -> PretrainConfig:  # "auto": 0 workers (recorded in this process)
        return PretrainConfig(method="simclr", data=str(packed), out=str(out), backbone="cnn-tiny", epochs=1,
                              batch_size=8, checkpoint_every=2, knn=False, crop=16, resume=resume,
                              monitor_samples=16, num_workers="auto")

    run_pretrain(cfg(tmp_path / "full", False))
    full = list(seen)
    assert len(full) == 64  # 8 steps of 8 (the 4 left over are dropped: full batches only)
    seen.clear()
    with pytest.raises(Killed):
        run_pretrain(cfg(tmp_path / "cut", False), callbacks=[Crash()])
    assert seen[:32] == full[:32]
    seen.clear()
    # the resume runs where "auto" would now give 1 worker (3 cores, 2 training threads): it keeps the
    # cut run's 0 (loader.json), else LitData re-stripes the epoch (and reads it in a worker process)
    monkeypatch.delenv(WORKERS_ENV, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    torch.set_num_threads(2)
    result = run_pretrain(cfg(tmp_path / "cut", True))
    assert result.steps == 8 and seen == full[32:]
    assert json.loads((tmp_path / "cut" / "pretrain.json").read_text())["data"]["loader_workers"] == 0


def test_real_pairs_pretrain_native_and_evaluate(shared_data, tmp_path, capsys):
    """(d) the packed real BigEarthNet pairs: multimodal pretraining on whole 120 x 120 patches, evaluate
    reads them."""
    pack = make_packed(tmp_path / "pairs", source=shared_data / "bigearthnet" / "ben_s1s2_real.npz",
                       chunk_bytes="2MB")
    out = tmp_path / "pt"
    _cli(
        [
            "pretrain",
            "--method",
            "multimodal",
            "--modalities",
            "s2,s1",
            "--data",
            str(pack),
            "--out",
            str(out),
            "--backbone",
            "cnn-tiny",
            "--crop",
            "0",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--num-workers",
            "2",
        ]
    )
    rec = json.loads((out / "pretrain.json").read_text())
    assert (
        rec["data"]["streamed"]
        and rec["data"]["crop"] == "full patch"
        and rec["steps"] == rec["max_steps"] >= 1
    )
    ev = tmp_path / "ev"
    _cli(["evaluate", "--task", "multilabel", "--data", str(pack), "--backbone", str(out), "--out", str(ev),
          "--fractions", "1.0", "--seeds", "1", "--epochs", "1", "--protocol", "knn"])
    assert "input: full patch" in capsys.readouterr().out
    rows = pd.read_parquet(ev / "results.parquet")
    assert len(rows) == 1 and not rows["synthetic"].any()


@pytest.mark.slow
def test_lightning_ddp_spawn_streams_a_pack(packed, tmp_path):
    """The pretraining runner under Lightning DDP (2 gloo processes) streams the pack: each rank builds its
    StreamingDataLoader after the process group started, so LitData splits the epoch between them."""
    from eoreps.ssl.pretrain import PretrainConfig, run_pretrain

    cfg = PretrainConfig(method="simclr", data=str(packed), out=str(tmp_path), backbone="cnn-tiny", epochs=1,
                         batch_size=8, knn=False, crop=16, devices=2, strategy="ddp_spawn", accelerator="cpu",
                         monitor_samples=16)
    result = run_pretrain(cfg)
    rec = json.loads((tmp_path / "pretrain.json").read_text())
    assert rec["world_size"] == 2 and rec["max_steps"] == 4 == result.steps  # 68 samples / 2 ranks / 8
    assert rec["data"]["loader_workers"] == 0  # resolved in the parent (EOREPS_LOADER_WORKERS=0 here)


@pytest.mark.parametrize("cmd", ["pretrain", "evaluate"])
def test_negative_crop_is_one_line(packed, tmp_path, capsys, cmd):
    from eoreps.cli import main

    with pytest.raises(SystemExit) as e:
        main([cmd, "--quick", "--data", str(packed), "--crop", "-3", "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "Traceback" not in err[0] and "crop must be >=" in err[0] and "-3" in err[0]
