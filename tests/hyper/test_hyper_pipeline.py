"""End to end on a tiny real zoo: fit (bf16, checkpoints, resume), evaluate (in and out of
distribution), sample, and the quick demo with every row and column of the table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from eoreps.errors import ConfigError, DataError
from eoreps.hyper.autoencoder import ModelConfig
from eoreps.hyper.probes import CATEGORICAL, COLUMNS, CONTINUOUS, ROW_LABELS, evaluate
from eoreps.hyper.representation import load_representation
from eoreps.hyper.train import FitConfig, fit

TINY = ModelConfig(d_model=32, n_heads=2, enc_layers=1, dec_layers=1, latent_dim=8, proj_dim=8)


@pytest.fixture(scope="module")
def rep(tiny_zoo, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rep") / "rep"
    s1 = fit(FitConfig(zoo=tiny_zoo, out=out, epochs=1, batch_size=8, model=TINY))
    assert (out / "checkpoints" / "last.ckpt").is_file() and s1["steps"] > 0
    assert list((out / "checkpoints").glob("epoch=0-*.ckpt"))  # written at the end of each epoch
    s2 = fit(FitConfig(zoo=tiny_zoo, out=out, epochs=2, batch_size=8, model=TINY))  # resumes from last.ckpt
    assert s2["steps"] == 2 * s1["steps"] and s2["epochs"] == 2
    import json

    assert (
        json.loads((out / "hyper.json").read_text())["seconds"] >= s1["seconds"] + s2["seconds"] - 0.5
    )  # both calls
    return out


def test_fit_writes_a_loadable_representation(rep, tiny_zoo):
    from eoreps.zoo.modelzoo import ModelZoo

    r = load_representation(rep)
    W = ModelZoo(tiny_zoo).weights_matrix()[:5]
    z = r.embed(W)
    assert z.shape == (5, 8) and torch.isfinite(z).all()
    assert r.decode(z).shape == W.shape
    splits = pd.read_csv(rep / "splits.csv")
    assert set(splits["split"]) == {"train", "val", "test"} and splits["model_id"].is_unique


def test_canonical_input_representation_is_exactly_permutation_invariant(tiny_zoo, tmp_path):
    from eoreps.hyper.augment import AugmentConfig, Permuter
    from eoreps.zoo.modelzoo import ModelZoo

    out = tmp_path / "rep-canonical"
    fit(FitConfig(zoo=tiny_zoo, out=out, epochs=1, batch_size=8, precision="fp32", model=TINY,
                  augment=AugmentConfig(target="canonical", canonical_input=True)))
    r = load_representation(out)
    assert r.canonical_input
    W = ModelZoo(tiny_zoo).weights_matrix()[:6]
    Wp = Permuter(r.tokenizer).random(W, torch.Generator().manual_seed(0))
    assert not torch.equal(W, Wp)
    torch.testing.assert_close(r.embed(Wp), r.embed(W), rtol=0, atol=1e-6)


def test_aligned_representation_matches_models_to_its_stored_reference(tiny_zoo, tmp_path):
    from eoreps.hyper.align import match
    from eoreps.hyper.augment import AugmentConfig, Permuter
    from eoreps.zoo.modelzoo import ModelZoo

    with pytest.raises(ConfigError, match="align=True matches"):
        AugmentConfig(align=True)  # permutation left on
    out = tmp_path / "rep-aligned"
    fit(FitConfig(zoo=tiny_zoo, out=out, epochs=1, batch_size=8, precision="fp32", model=TINY,
                  augment=AugmentConfig(permute=False, align=True)))
    r = load_representation(out)
    W = ModelZoo(tiny_zoo).weights_matrix()
    assert r.reference is not None and r.reference.shape == (W.shape[1],)
    # the scaler was fitted on matched weights: their token mean is the matched training mean, not the raw one
    perm = Permuter(r.tokenizer)
    assert not torch.equal(match(perm, r.reference, W), W)
    # a permuted copy is matched back to the same unit order, so its embedding is the same
    Wp = perm.random(W[:6], torch.Generator().manual_seed(0))
    torch.testing.assert_close(r.embed(Wp), r.embed(W[:6]), rtol=0, atol=1e-6)
    # a refit with the same options resumes (the reference is recomputed identically)
    s = fit(FitConfig(zoo=tiny_zoo, out=out, epochs=2, batch_size=8, precision="fp32", model=TINY,
                      augment=AugmentConfig(permute=False, align=True)))
    assert s["epochs"] == 2
    torch.testing.assert_close(load_representation(out).reference, r.reference, rtol=0, atol=0)
    # a reference of the wrong shape in model.safetensors is a one-line DataError naming the file
    from safetensors.torch import load_file, save_file

    bad = tmp_path / "rep-bad"
    shutil.copytree(out, bad)
    state = load_file(str(bad / "model.safetensors"))
    state["align.reference"] = state["align.reference"][:-1].contiguous()
    save_file(state, str(bad / "model.safetensors"))
    with pytest.raises(DataError, match="model.safetensors.*align.reference has shape"):
        load_representation(bad)
    # sampling from it: decoded weights, no advice to refit
    from eoreps.hyper.sample import SampleConfig, run_sample
    from eoreps.zoo.datasets import ZooData, load_digits

    d = load_digits(0)
    data = ZooData("digits", d.x_train[:100], d.y_train[:100], d.x_val, d.y_val, d.x_test, d.y_test, 10)
    res = run_sample(
        SampleConfig(zoo=tiny_zoo, rep=out, out=tmp_path / "s", n=2, top_k=4, epochs=[0]), data=data
    )
    assert (
        "--functional" in res["note"] and res["summary"]["aligned_representation"]
    )  # aligned, no --functional
    assert next(iter(res["tables"].values()))["epoch 0"].notna().all()


def test_a_representation_from_before_token_statistics_still_loads(tiny_zoo, tmp_path):
    """hyper.json files written before the option existed have no 'token_stats': they had none."""
    import dataclasses
    import json

    from eoreps.zoo.modelzoo import ModelZoo

    out = tmp_path / "rep-old"
    fit(
        FitConfig(
            zoo=tiny_zoo, out=out, epochs=1, batch_size=8, model=dataclasses.replace(TINY, token_stats=False)
        )
    )
    meta = json.loads((out / "hyper.json").read_text())
    del meta["model"]["token_stats"]
    (out / "hyper.json").write_text(json.dumps(meta))
    r = load_representation(out)
    assert not r.net.cfg.token_stats
    assert torch.isfinite(r.embed(ModelZoo(tiny_zoo).weights_matrix()[:3])).all()
    # its fit plan, as written then (no token_stats, no target/canonical_input/align), still resumes
    plan = json.loads((out / "fit_plan.json").read_text())
    del plan["model"]["token_stats"]
    del plan["window_latent"]  # plans from before the option: the window bottleneck (per-neuron: unused)
    for k in ("target", "canonical_input", "align"):
        del plan["augment"][k]
    (out / "fit_plan.json").write_text(json.dumps(plan))
    s = fit(
        FitConfig(
            zoo=tiny_zoo, out=out, epochs=2, batch_size=8, model=dataclasses.replace(TINY, token_stats=False)
        )
    )
    assert s["epochs"] == 2


def test_zoo_epochs_that_match_no_checkpoint_are_refused(tiny_zoo, tmp_path):
    with pytest.raises(ConfigError, match="epochs are 0..2"):
        fit(FitConfig(zoo=tiny_zoo, out=tmp_path / "r", epochs=1, batch_size=8, model=TINY, zoo_epochs=[25]))


def test_zoo_query_trains_on_matching_checkpoints_and_splits_every_model(tiny_zoo, tmp_path):
    from eoreps.zoo.modelzoo import ModelZoo

    props = ModelZoo(tiny_zoo).properties
    s = fit(
        FitConfig(
            zoo=tiny_zoo, out=tmp_path / "r", epochs=1, batch_size=4, model=TINY, zoo_query="epoch >= 1"
        )
    )
    splits = pd.read_csv(tmp_path / "r" / "splits.csv")
    n_train_models = int((splits["split"] == "train").sum())
    assert s["train_checkpoints"] == 2 * n_train_models  # epochs 1 and 2 of each training model, not epoch 0
    assert sorted(splits["model_id"]) == sorted(
        props["model_id"].unique()
    )  # evaluate/sample see the whole zoo
    for bad, msg in (("epoch >= 99", "matches no checkpoint"), ("no_such_column > 1", "not a valid query"),
                     ("epoch + 1", "must be a condition"), ("epoch >= @props", "not a valid query"),
                     ("model_id == 0 and epoch == 0", "fewer than 2 training checkpoints")):
        with pytest.raises(ConfigError, match=msg):
            fit(
                FitConfig(
                    zoo=tiny_zoo, out=tmp_path / "bad", epochs=1, batch_size=4, model=TINY, zoo_query=bad
                )
            )


def test_changed_options_refuse_to_resume(rep, tiny_zoo):
    with pytest.raises(ConfigError, match="gamma"):
        fit(FitConfig(zoo=tiny_zoo, out=rep, epochs=2, batch_size=8, gamma=0.5, model=TINY))


def test_evaluate_in_and_out_of_distribution(rep, tiny_zoo, tmp_path):
    res = evaluate(tiny_zoo, rep, tmp_path / "ev")
    assert res["in_distribution"]
    t = res["properties"]
    assert list(t["property"]) == [ROW_LABELS[c] for c in (*CONTINUOUS, *CATEGORICAL)]
    assert t.loc[t["property"] == "test accuracy", list(COLUMNS)].notna().all(axis=None)
    assert (tmp_path / "ev" / "properties.md").is_file() and (
        tmp_path / "ev" / "model_selection.csv"
    ).is_file()
    assert len(res["model_selection"]) == 1 + len(COLUMNS)
    assert list(res["kendall_tau"]["property"]) == [ROW_LABELS[c] for c in CONTINUOUS]
    import json

    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert summary["kendall_tau"][0]["property"] == "test accuracy"
    assert "Kendall" in (tmp_path / "ev" / "properties.md").read_text()
    other = tmp_path / "other_zoo"
    shutil.copytree(tiny_zoo, other)
    res2 = evaluate(other, rep, tmp_path / "ev2")
    assert not res2["in_distribution"]


def test_wrong_architecture_is_a_one_line_error(rep):
    r = load_representation(rep)
    with pytest.raises(DataError, match="same architecture"):
        r.check_compatible([("fc1.weight", (3, 4)), ("fc1.bias", (3,))], "some_zoo")
    with pytest.raises(DataError, match="not a representation directory"):
        load_representation(rep.parent / "missing")


def test_sample_tables(rep, tiny_zoo, tmp_path):
    from eoreps.hyper.sample import SampleConfig, run_sample
    from eoreps.zoo.datasets import ZooData, load_digits

    d = load_digits(0)
    data = ZooData("digits", d.x_train[:200], d.y_train[:200], d.x_val, d.y_val, d.x_test, d.y_test, 10)
    res = run_sample(SampleConfig(zoo=tiny_zoo, rep=rep, out=tmp_path / "s", n=4, top_k=4, epochs=[0, 1],
                                  bandwidth_scale=0.5), data=data, transfer_data=data)
    main, transfer = res["tables"].values()
    assert len(main) == 5 and len(transfer) == 2
    assert main["method"].iloc[-1].startswith("anchors reconstructed")
    assert "--align" in res["note"] and not res["summary"]["aligned_representation"]
    assert main[["epoch 0", "epoch 1"]].notna().all(axis=None)
    assert "bandwidth 0.5 x Scott's" in res["markdown"] and res["summary"]["bandwidth_scale"] == 0.5
    div = res["summary"]["diversity"]
    assert list(div) == ["anchors", "anchors reconstructed", "sampled"] and "### Diversity" in res["markdown"]
    assert div["anchors"]["weight_distance"] > 0 and 0 <= div["sampled"]["prediction_disagreement"] <= 1
    for f in ("sample.md", "sample.csv", "sample.png", "sampled.safetensors"):
        assert (tmp_path / "s" / f).is_file()


def test_quick_demo_has_every_row_and_column(tmp_path):
    from eoreps.cli import main

    with pytest.raises(SystemExit) as e:
        main(["hyper", "demo", "--quick", "--out", str(tmp_path / "demo")])
    assert e.value.code == 0
    csv = pd.read_csv(tmp_path / "demo" / "properties.csv")
    assert list(csv["property"]) == [ROW_LABELS[c] for c in (*CONTINUOUS, *CATEGORICAL)]
    assert list(csv.columns) == ["property", "metric", *COLUMNS]
    md = (tmp_path / "demo" / "properties.md").read_text()
    for label in ROW_LABELS.values():
        assert f"| {label} |" in md
    # a smoke run says so above both tables and in its JSON (2 test models are no measurement)
    assert md.count("(smoke run: ") == 2 and "not a measurement" in md
    import json

    assert json.loads((tmp_path / "demo" / "evaluate" / "summary.json").read_text())["smoke"] is True


def test_the_block_readout_runs_the_same_encoder_as_z(rep, tiny_zoo):
    """encode_blocks steps through the encoder block by block: its z must be encode()'s, and its readout
    the compression token after each block."""
    from eoreps.zoo.modelzoo import ModelZoo

    r = load_representation(rep)
    W = ModelZoo(tiny_zoo).weights_matrix()[:7]
    z, blocks = r.embed_blocks(W, batch_size=3)
    cfg = r.net.cfg
    assert blocks.shape == (7, cfg.enc_layers * cfg.d_model) and torch.isfinite(blocks).all()
    torch.testing.assert_close(z, r.embed(W), rtol=0, atol=0)
    tok = r.scaler.transform(r.tokenizer.tokenize(W.float()))
    with torch.no_grad():
        net = r.net
        z2, b2 = net.encode_blocks(tok)
        torch.testing.assert_close(z2, net.encode(tok), rtol=1e-5, atol=1e-5)
        x = net.encoder.layers[0](net._encoder_input(tok))
        torch.testing.assert_close(b2[:, :cfg.d_model], x[:, 0])
        assert not torch.allclose(b2[:, :cfg.d_model], net.encoder.norm(x)[:, 0])  # the block's own output
