"""Studies that pretrain their own methods (``pretrain:`` in a method spec), e.g. the pretext tasks."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from eoreps.errors import ConfigError
from eoreps.evaluation.encoders import MethodSpec
from eoreps.evaluation.study import (
    CellSpec,
    DataConfig,
    StudyConfig,
    cell_hash,
    load_study,
    quick_study,
    run_study,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
QUICK = {"backbone": "cnn-tiny", "quick": True, "batch_size": 16, "max_samples": 64, "monitor_samples": 32,
         "accelerator": "cpu"}


@pytest.fixture(scope="module")
def simeo_small() -> Path:
    """The small cached SimEO folder of the pretraining tests (same arguments, so the same cache entry)."""
    from eoreps.data.simeo.io import cached_simeo

    return cached_simeo(n=320, seed=0, scenes=3, scene_size=96)


def _cfg(data: Path, **pretrain) -> StudyConfig:
    return StudyConfig(
        data=DataConfig(data=str(data), modalities=["s2"], limits={"train": 120, "val": 40, "test": 60}),
        methods=[MethodSpec("rotation", pretrain={"method": "rotation", **QUICK, **pretrain})],
        protocols=["linear"],
        fractions=[1.0],
        seeds=1,
    )


def test_study_pretrains_a_pretext_method_then_evaluates_it(simeo_small: Path, tmp_path: Path) -> None:
    report = run_study(_cfg(simeo_small), tmp_path)
    run = tmp_path / "pretrain" / "rotation"
    assert report.is_file() and (run / "backbone.safetensors").is_file()
    cell = json.loads((tmp_path / "cells" / "rotation__linear__f1__s0.json").read_text())
    assert cell["method_kind"] == "pretrained" and 0 <= cell["result"]["oa"] <= 1
    study = json.loads((tmp_path / "study.json").read_text())
    assert study["config"]["methods"][0]["backbone"] == str(run)
    assert json.loads((run / "backbone.json").read_text())["method"] == "rotation"

    weights = (run / "backbone.safetensors").stat().st_mtime_ns
    seen: list[str] = []
    run_study(_cfg(simeo_small), tmp_path, on_cell=lambda c: seen.append(c.key))
    assert seen == [] and (run / "backbone.safetensors").stat().st_mtime_ns == weights  # all reused

    run_study(_cfg(simeo_small, lr=1e-3), tmp_path, on_cell=lambda c: seen.append(c.key))
    assert seen == ["rotation__linear__f1__s0"]  # changed pretraining: retrained and re-evaluated
    assert (run / "backbone.safetensors").stat().st_mtime_ns != weights


def test_example_pretext_config_parses() -> None:
    cfg = load_study(CONFIGS / "study_pretext.yaml")
    pretext = {"rotation", "jigsaw", "band-prediction", "inpainting"}
    assert pretext | {"simclr", "multimodal", "moco"} == {m.pretrain["method"] for m in cfg.methods}
    assert all(m.kind == "pretrained" for m in cfg.methods)
    assert all(m.pretrain.get("quick") for m in quick_study(cfg).methods)


def test_pretrain_specs_are_checked() -> None:
    with pytest.raises(ConfigError, match="unknown pretraining method 'rotate'"):
        MethodSpec("a", pretrain={"method": "rotate"})
    with pytest.raises(ConfigError, match="unknown option 'epoch'"):
        MethodSpec("a", pretrain={"method": "rotation", "epoch": 3})
    with pytest.raises(ConfigError, match="sets out and resume"):
        MethodSpec("a", pretrain={"method": "rotation", "out": "x"})
    with pytest.raises(ConfigError, match="supervised"):
        MethodSpec("a", supervised=True, pretrain={"method": "rotation"})
    with pytest.raises(ConfigError, match="at least 'method'"):
        MethodSpec("a", pretrain={"epochs": 3})


def test_cell_hashes_of_methods_without_pretraining_are_unchanged() -> None:
    """Adding the ``pretrain`` field must not invalidate the finished cells of existing studies."""
    cfg = StudyConfig(
        methods=[MethodSpec("rand", backbone="random")], protocols=["linear"], fractions=[1.0], seeds=1
    )
    method, cell = cfg.methods[0], CellSpec("rand", "linear", 1.0, 0)
    spec = dataclasses.asdict(method)
    for later in ("pretrain", "weights", "key_map", "band_fill", "data_units"):  # fields added since
        del spec[later]
    opts = dataclasses.asdict(cfg.options)
    payload = {
        "method": spec,
        "cell": {k: v for k, v in dataclasses.asdict(cell).items() if k != "shots"},  # before k-shot cells
        "options": {k: opts[k] for k in ("linear", "train")},
        # the data settings as they were before ``crop`` existed (an unset crop stays out of the hash)
        "data": {k: v for k, v in dataclasses.asdict(cfg.data).items() if k not in ("crop", "loader")},
        "v": 1,
    }
    old = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
    assert cell_hash(cfg, method, cell) == old
