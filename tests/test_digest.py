"""eoreps.digest gives every call site the string it computed before (existing runs and caches are found)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from eoreps.digest import bytes_digest, cache_dir, digest, file_sha256


def _old(obj, n=16, algo="sha256", default=str) -> str:
    return hashlib.new(algo, json.dumps(obj, sort_keys=True, default=default).encode()).hexdigest()[:n]


PAYLOADS = [{"b": 1, "a": [1.5, "x", None]}, {"p": Path("/x/y"), "t": (1, 2), "nested": {"z": 1, "y": 2}},
            [2, "v", {"k": 1}], "plain"]


@pytest.mark.parametrize("obj", PAYLOADS)
def test_digest_is_the_old_formula(obj):
    assert digest(obj) == _old(obj)
    assert digest(obj, 24) == _old(obj, 24)
    assert digest(obj, 16, "sha1") == _old(obj, 16, "sha1")
    assert bytes_digest(b"abc") == hashlib.sha256(b"abc").hexdigest()[:16]
    assert bytes_digest([b"a", b"bc"], None, "sha1") == hashlib.sha1(b"abc").hexdigest()


def test_file_sha256_and_store_checksums(tmp_path):
    from eoreps.zoo.store import sha256_file

    p = tmp_path / "f.bin"
    data = np.random.default_rng(0).bytes((1 << 20) + 17)  # crosses a read block
    p.write_bytes(data)
    assert file_sha256(p) == sha256_file(p) == hashlib.sha256(data).hexdigest()


def test_cache_dirs(monkeypatch, tmp_path):
    from eoreps.data.simeo.io import cache_root
    from eoreps.tasks.data import stats_cache_dir
    from eoreps.zoo.native import _cache_dir

    monkeypatch.setenv("EOREPS_CACHE", str(tmp_path))
    assert (stats_cache_dir(), cache_root(), _cache_dir()) == (tmp_path / "stats", tmp_path / "simeo",
                                                                 tmp_path / "kernels")
    monkeypatch.delenv("EOREPS_CACHE")
    assert cache_dir("stats") == Path.home() / ".cache" / "eoreps" / "stats"


def test_pretraining_record_hash_unchanged():
    from eoreps.evaluation.pretraining import _digest
    from eoreps.ssl.pretrain import PretrainConfig

    # computed with the code before eoreps.digest existed (git HEAD of issue 21): recorded runs are reused
    assert _digest(PretrainConfig(data="/d", out="/o", method="rotation", epochs=3)) == "236c200057dc2218"
    assert _digest(PretrainConfig(data="/d", out="/o", method="tile2vec", epochs=3,
                                  data_options={"a": 1})) == "921b6faae183aa32"


def test_stats_feature_and_simeo_keys_unchanged(tmp_path, monkeypatch):
    from eoreps.data.simeo import io as simeo_io
    from eoreps.data.simeo.params import SIMEO_VERSION, SimEOParams
    from eoreps.data.stats import BandStats, _content_digest, cached_stats, dataset_fingerprint
    from eoreps.evaluation.data import make_eval_data, stats_digest
    from eoreps.evaluation.features import cache_key

    stats = BandStats(mean={"s2": [1.0, 2.0]}, std={"s2": [0.5, 0.25]})
    assert stats_digest(stats, ["s2"]) == _old({"s2": [[1.0, 2.0], [0.5, 0.25]]}, default=None)
    parts = {"enc": "x", "sha": "ab", "n": 3}
    assert cache_key(parts) == _old(parts, 24)
    p = SimEOParams()
    assert p.digest() == _old(p.to_dict(), default=None)

    made = []
    monkeypatch.setattr(simeo_io, "is_simeo_folder", lambda path: made.append(path) or True)
    key = json.dumps([SIMEO_VERSION, p.digest(), 5, 1, 0, 0, 256])
    assert simeo_io.cached_simeo(5, 1).name == hashlib.sha256(key.encode()).hexdigest()[:20]

    ds = [{"s2": np.full((2, 2, 2), float(i), np.float32)} for i in range(3)]
    h = hashlib.sha1()
    for i in (0, 1, 2):
        h.update(ds[i]["s2"].tobytes())
    assert _content_digest(ds, ["s2"]) == h.hexdigest()
    fp = dataset_fingerprint(ds, ["s2"], None, 0)
    cached_stats(ds, tmp_path, modalities=["s2"])
    assert (tmp_path / f"band_stats_{_old(fp, 16, 'sha1', None)}.json").is_file()

    x, y = torch.arange(8, dtype=torch.float32).reshape(2, 1, 2, 2), torch.tensor([0, 1])
    data = make_eval_data("toy", "classify", ["a", "b"], {s: ({"s2": x + k}, y) for k, s in
                                                          enumerate(("train", "val", "test"))})
    h = hashlib.sha256()
    for k in range(3):
        h.update((x + k).numpy().tobytes())
        h.update(y.numpy().tobytes())
    assert data.fingerprint["digest"] == h.hexdigest()[:16]
