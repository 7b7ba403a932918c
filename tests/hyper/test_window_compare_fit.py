"""``benchmarks/hyper_window_compare.py``'s own fit on a real (tiny) zoo: what its ``--save-model`` folder
records: the zoo's architecture (named when another zoo does not fit) and the fit's own split."""

from __future__ import annotations

import argparse

import pytest

from eoreps.errors import DataError
from eoreps.hyper.probes import build_features
from eoreps.hyper.representation import load_representation
from eoreps.zoo.modelzoo import ModelZoo


def test_saved_fit_names_the_zoo_architecture(tiny_zoo, tmp_path, bench_script):
    bench = bench_script("hyper_window_compare")
    zoo = ModelZoo(tiny_zoo)
    W = zoo.weights_matrix()
    args = argparse.Namespace(d_model=32, layers=1, latent_dim=8, window=16, token_width=32, gamma=0.1,
                              lr=3e-4, steps=2, batch_size=4, latent="window")
    rep = bench.fit_module("window", zoo, W, args, 0)
    split, ids = bench.model_split(zoo.properties)  # per checkpoint
    own = dict(zip(ids.tolist(), split.tolist(), strict=True))  # per model
    bench.save_window_representation(rep, tmp_path / "rep", tiny_zoo, own)
    back = load_representation(tmp_path / "rep")
    assert back.meta["architecture"] == zoo.manifest["architecture"]
    # hyper evaluate on the same zoo takes the fit's own split (in distribution)
    assert back.splits() == own
    data, in_distribution = build_features(tiny_zoo, back)
    assert in_distribution and (data.props["split"].to_numpy() == split).all()
    back.check_compatible(zoo.param_order, str(tiny_zoo))  # its own zoo fits
    other = [(k, tuple(2 * d for d in s)) for k, s in zoo.param_order]
    with pytest.raises(DataError, match=f"\\({zoo.manifest['architecture']}\\)"):
        back.check_compatible(other, "other-zoo")
