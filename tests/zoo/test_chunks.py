"""Zoo chunk seeds, the trained-image count and build_zoo leaving its config alone (issue 21, item 6)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import tomllib

from eoreps.zoo.build import BuildConfig, build_zoo
from eoreps.zoo.chunks import chunk_seed
from eoreps.zoo.grid import load_grid
from eoreps.zoo.population import TrainOptions

ROOT = Path(__file__).resolve().parents[2]
GRID = {"seed": [0, 1], "activation": ["relu"], "init": ["kaiming_uniform"], "optimizer": ["adam"],
        "lr": [1e-2], "weight_decay": [0.0], "dropout": [0.0], "train_fraction": [1.0, 0.5],
        "sampling": "grid"}


def test_chunk_seed_keeps_existing_zoos_and_never_collides():
    # the seeds of every zoo built so far (chunks < 1000) are unchanged: they resume bit for bit
    for seed in (0, 1, 7, 123):
        for c in (0, 1, 999):
            assert chunk_seed(seed, c) == seed * 1000 + c
    # the old formula gave seed 0 chunk 1000 the seed of seed 1 chunk 0; the new one keeps every pair apart
    seen = {chunk_seed(s, c) for s in range(4) for c in range(2_500)}
    assert len(seen) == 4 * 2_500
    assert chunk_seed(0, 1000) != chunk_seed(1, 0)
    assert chunk_seed(0, 1000) == chunk_seed(0, 1000)  # deterministic


def test_build_counts_images_and_leaves_the_callers_options(tmp_path, small_digits):
    opts = TrainOptions(batch_size=50)  # engine and precision 'auto': build_zoo resolves them on a copy
    cfg = BuildConfig(out=tmp_path / "zoo", grid=load_grid(GRID), epochs=2, seed=0, options=opts,
                      chunk_size=2)
    before = dataclasses.replace(opts)
    summary = build_zoo(cfg, data=small_digits)
    assert cfg.options is opts and opts == before and opts.engine == "auto" and opts.precision == "auto"
    n = len(small_digits.y_train)  # 200 images; members with train_fraction 0.5 see 100 per epoch
    assert summary["models_trained"] == 4
    assert summary["trained_images"] == 2 * 2 * n + 2 * 2 * (n // 2)
    again = build_zoo(cfg, data=small_digits)  # complete: nothing trained on resume
    assert again["trained_images"] == 0 and again["models_trained"] == 0


def test_package_data_patterns_match_files_and_hyper_is_a_package():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = setuptools["package-data"]["eoreps"]
    for pat in patterns:
        assert list((ROOT / "src" / "eoreps").glob(pat)), f"package-data pattern {pat} matches no file"
    init = ROOT / "src" / "eoreps" / "hyper" / "__init__.py"
    assert init.is_file() and '"""' in init.read_text()
