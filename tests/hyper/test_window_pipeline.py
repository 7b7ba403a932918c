"""``eoreps hyper fit / evaluate / sample --tokenizer window`` on the tiny digits zoo, and its bad inputs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from eoreps.cli import main
from eoreps.hyper.representation import load_representation
from eoreps.hyper.window_representation import WindowRepresentation

FIT = ["--tokenizer", "window", "--window", "16", "--token-width", "32", "--quick", "--batch-size", "8"]


def _run(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code in (0, None)
    return capsys.readouterr().out


def _fails(argv: list[str], capsys, names: str) -> str:
    """Run a command that must fail with exit 2 and one stderr line naming ``names``; that line."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert e.value.code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert names in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def window_rep(tiny_zoo, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wrep") / "rep"
    with pytest.raises(SystemExit) as e:
        main(["hyper", "fit", "--zoo", str(tiny_zoo), "--out", str(out), *FIT])
    assert e.value.code in (0, None)
    return out


def test_fit_writes_a_window_representation(window_rep, tiny_zoo):
    meta = json.loads((window_rep / "hyper.json").read_text())
    assert meta["tokenizer"] == "window" and meta["window"] == 16 and meta["window_tokenizer"]["width"] == 32
    # cnn_digits: the three conv/linear -> next-layer chains, verified on the zoo's own network
    assert meta["window_tokenizer"]["chains"] == [[0, 1], [1, 2], [2, 3]]
    assert (window_rep / "checkpoints" / "last.ckpt").is_file()
    rep = load_representation(window_rep)
    assert isinstance(rep, WindowRepresentation)
    from eoreps.zoo.modelzoo import ModelZoo

    W = ModelZoo(tiny_zoo).weights_matrix()[:3]
    rep.meta["config"]["precision"] = "fp32"  # exact comparisons below (bf16 kernels vary with batch size)
    z, blocks = rep.embed_blocks(W)
    assert z.shape == (3, rep.latent_dim) and torch.isfinite(z).all()
    codes = rep.window_codes(W[:1])[0][0]  # the model's embedding is the mean of its window codes
    assert codes.shape == (len(rep.starts), rep.latent_dim) and len(rep.starts) > 1
    assert torch.allclose(z[0], codes.mean(0), atol=1e-5)
    # batching several models' windows together changes nothing
    assert torch.allclose(rep.embed_blocks(W, batch_size=1)[0], z, atol=1e-5)
    decoded = rep.decode_codes(rep.codes(W))
    assert decoded.shape == W.shape and torch.isfinite(decoded).all()


def test_block_readout_is_per_layer_by_default_and_mean_on_request(window_rep, tiny_zoo):
    """``learned`` keeps which layer a window code came from: the per-layer means of the window readouts,
    concatenated; ``window_readout: mean`` (hyper.json) gives the plain mean; an unknown readout is one
    line."""
    from eoreps.errors import DataError
    from eoreps.hyper.window_representation import layer_readout_weights
    from eoreps.zoo.modelzoo import ModelZoo

    meta = json.loads((window_rep / "hyper.json").read_text())
    assert meta["window_readout"] == "layer"
    rep = load_representation(window_rep)
    rep.meta["config"]["precision"] = "fp32"
    W = ModelZoo(tiny_zoo).weights_matrix()[:2]
    _, per_window = rep.window_codes(W)  # (2, n_windows, C)
    weights = layer_readout_weights(rep.window_tokenizer, rep.starts)
    layer_of = rep.window_tokenizer.positions[torch.tensor(rep.starts), 0]
    assert len(weights) == len(set(layer_of.tolist())) >= 2
    _, blocks = rep.embed_blocks(W)
    assert blocks.shape == (2, rep.blocks_dim) and rep.blocks_dim == len(weights) * per_window.shape[-1]
    first = layer_of == layer_of[0]
    assert torch.allclose(blocks[:, :per_window.shape[-1]], per_window[:, first].mean(1), atol=1e-5)
    rep.readout = "mean"
    assert torch.allclose(rep.embed_blocks(W)[1], per_window.mean(1), atol=1e-5)
    old_meta = {k: v for k, v in rep.meta.items() if k != "window_readout"}  # fitted before the key existed
    old = WindowRepresentation(old_meta, rep.window_tokenizer, rep.scaler, rep.net, rep.window)
    assert old.readout == "mean"
    with pytest.raises(DataError, match="window_readout 'median'"):
        WindowRepresentation({**rep.meta, "window_readout": "median"}, rep.window_tokenizer, rep.scaler,
                             rep.net, rep.window, window_rep)


def test_fit_resumes_and_refuses_another_window(window_rep, tiny_zoo, capsys):
    out = _run(["hyper", "fit", "--zoo", str(tiny_zoo), "--out", str(window_rep), *FIT, "--epochs", "3"],
               capsys)
    # 36 training checkpoints / batch 8 = 4 steps per epoch; the 2-epoch checkpoint continued to epoch 3
    assert re.search(r"epochs\s+3\n", out) and re.search(r"steps\s+12\n", out)
    _fails(["hyper", "fit", "--zoo", str(tiny_zoo), "--out", str(window_rep), *FIT[:2], "--window", "8",
            *FIT[4:]], capsys, "differs in window")


def test_evaluate_and_sample_run_on_the_window_representation(window_rep, tiny_zoo, tmp_path, capsys):
    _run(["hyper", "evaluate", "--zoo", str(tiny_zoo), "--rep", str(window_rep), "--out", str(tmp_path / "e"),
          "--quick"], capsys)
    table = pd.read_csv(tmp_path / "e" / "properties.csv").set_index("property")
    assert table.loc["test accuracy", "metric"] == "R2" and pd.notna(table.loc["test accuracy", "learned"])
    _run(["hyper", "sample", "--zoo", str(tiny_zoo), "--rep", str(window_rep), "--out", str(tmp_path / "s"),
          "--quick"], capsys)
    from safetensors.torch import load_file

    from eoreps.zoo.modelzoo import ModelZoo

    sampled = load_file(str(tmp_path / "s" / "sampled.safetensors"))["weights"]
    assert sampled.shape == (4, ModelZoo(tiny_zoo).num_params) and torch.isfinite(sampled).all()
    assert "sampled (KDE on hyper-representation)" in (tmp_path / "s" / "sample.md").read_text()


def _zoo_copy(tiny_zoo: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "zoo"
    shutil.copytree(tiny_zoo, dst)
    return dst


def test_window_larger_than_the_model_is_one_line(tiny_zoo, tmp_path, capsys):
    line = _fails(["hyper", "fit", "--zoo", str(tiny_zoo), "--out", str(tmp_path / "r"), *FIT[:2],
                   "--window", "1000", *FIT[4:]], capsys, str(tiny_zoo))
    assert "window" in line and "1000" in line


def test_a_zoo_mixing_architectures_is_one_line(tiny_zoo, tmp_path, capsys):
    zoo = _zoo_copy(tiny_zoo, tmp_path)
    idx = pd.read_parquet(zoo / "index.parquet")
    idx["architecture"] = ["cnn_digits" if m % 2 else "cnn_s" for m in idx["model_id"]]
    idx.to_parquet(zoo / "index.parquet", index=False)
    line = _fails(["hyper", "fit", "--zoo", str(zoo), "--out", str(tmp_path / "r"), *FIT], capsys, str(zoo))
    assert "mixes architectures" in line


def test_an_untokenisable_architecture_is_one_line(tiny_zoo, tmp_path, capsys):
    zoo = _zoo_copy(tiny_zoo, tmp_path)
    manifest = json.loads((zoo / "zoo.json").read_text())
    manifest["param_order"].insert(0, ["ghost.weight", [0, 4]])  # an empty tensor: nothing to tokenise
    (zoo / "zoo.json").write_text(json.dumps(manifest))
    line = _fails(["hyper", "fit", "--zoo", str(zoo), "--out", str(tmp_path / "r"), *FIT], capsys, str(zoo))
    assert "ghost.weight" in line and "cannot be tokenised" in line


def test_a_zoo_of_another_architecture_is_one_line(window_rep, tiny_zoo, tmp_path, capsys):
    zoo = _zoo_copy(tiny_zoo, tmp_path)
    manifest = json.loads((zoo / "zoo.json").read_text())
    manifest["param_order"][0][0] = "stem.weight"
    (zoo / "zoo.json").write_text(json.dumps(manifest))
    _fails(["hyper", "evaluate", "--zoo", str(zoo), "--rep", str(window_rep), "--out", str(tmp_path / "e")],
           capsys, str(zoo))


def test_window_options_the_representation_cannot_honour_are_one_line(tiny_zoo, tmp_path, capsys):
    line = _fails(["hyper", "fit", "--zoo", str(tiny_zoo), "--out", str(tmp_path / "r"), *FIT, "--target",
                   "canonical"], capsys, "canonical")
    assert "window" in line


def test_aligned_window_fit_embeds_models_in_the_reference_order(tiny_zoo, tmp_path, capsys):
    """``--align``: every model matched to one reference before windowing (the generative setting); the
    reference is stored, and a permuted copy of a model embeds as the model itself."""
    from eoreps.hyper.window_tokens import WindowTokenizer
    from eoreps.zoo.modelzoo import ModelZoo

    _run(["hyper", "fit", "--zoo", str(tiny_zoo), "--out", str(tmp_path / "r"), *FIT, "--align"], capsys)
    rep = load_representation(tmp_path / "r")
    assert isinstance(rep, WindowRepresentation) and rep.reference is not None
    assert json.loads((tmp_path / "r" / "hyper.json").read_text())["augment"]["permute"] is False
    rep.meta["config"]["precision"] = "fp32"
    W = ModelZoo(tiny_zoo).weights_matrix()[-2:]
    tok = WindowTokenizer(rep.window_tokenizer.param_order, rep.window_tokenizer.width)
    shuffled = torch.stack([tok.permute(w, torch.Generator().manual_seed(i)) for i, w in enumerate(W)])
    assert not torch.equal(shuffled, W)
    assert torch.allclose(rep.embed(shuffled), rep.embed(W), atol=1e-4)
    rep.reference = None  # without matching, the permuted copies embed elsewhere
    assert not torch.allclose(rep.embed(shuffled), rep.embed(W), atol=1e-4)


def test_align_on_an_architecture_without_units_is_one_line(tiny_zoo, tmp_path, capsys):
    zoo = _zoo_copy(tiny_zoo, tmp_path)
    manifest = json.loads((zoo / "zoo.json").read_text())
    order = manifest["param_order"]
    order[0], order[1] = order[1], order[0]  # a bias before its weight: no per-neuron units to match
    (zoo / "zoo.json").write_text(json.dumps(manifest))
    line = _fails(["hyper", "fit", "--zoo", str(zoo), "--out", str(tmp_path / "r"), *FIT, "--align"],
                  capsys, str(zoo))
    assert "align" in line and "layer-list" in line


def test_window_fit_on_a_backbone_zoo_with_batchnorm(tmp_path):
    """A zoo of BatchNorm ResNet-like backbones (no activation column, float num_batches_tracked): fitted,
    with permutation chains only inside the residual blocks (conv1 -> conv2), verified on its members."""
    from eoreps.hyper.autoencoder import ModelConfig
    from eoreps.hyper.train import FitConfig, fit
    from eoreps.zoo.backbones import load_backbone_grid
    from eoreps.zoo.build import BuildConfig, build_zoo
    from eoreps.zoo.datasets import ZooData, load_digits
    from eoreps.zoo.modelzoo import ModelZoo
    from eoreps.zoo.population import TrainOptions

    d = load_digits(seed=0)
    data = ZooData("digits-tiny", d.x_train[:60], d.y_train[:60], d.x_val[:20], d.y_val[:20], d.x_test[:40],
                   d.y_test[:40], d.num_classes, False, "sklearn digits (tiny)")
    grid = {"seed": [0, 1, 2, 3], "optimizer": ["adam"], "lr": [1e-2], "weight_decay": [1e-4],
            "augment": ["flip"], "train_fraction": [1.0], "sampling": "random", "n_models": 4}
    build_zoo(BuildConfig(out=tmp_path / "z", dataset="digits", arch="backbone:cnn-tiny", epochs=1,
                          grid=load_backbone_grid(grid), options=TrainOptions(train_eval_max=20)), data=data)
    zoo = ModelZoo(tmp_path / "z")
    assert "activation" not in zoo.properties.columns
    model = ModelConfig(d_model=32, n_heads=2, enc_layers=1, dec_layers=1, latent_dim=8, proj_dim=8)
    fit(FitConfig(zoo=tmp_path / "z", out=tmp_path / "r", epochs=1, batch_size=2, tokenizer="window",
                  window=32, model=model))
    rep = load_representation(tmp_path / "r")
    chains = [(rep.window_tokenizer.layers[a].name, rep.window_tokenizer.layers[b].name)
              for a, b in rep.window_tokenizer.chains]
    assert chains and all(a.endswith(".conv1") and b.endswith(".conv2") for a, b in chains)
    z = rep.embed(zoo.weights_matrix())
    assert z.shape == (len(zoo), 8) and torch.isfinite(z).all()


def test_window_views_share_one_window_per_batch():
    """All models of a batch are seen at one window position, so the contrastive negatives differ by model,
    not by position; without permutation and noise a view is the window's own standardised tokens."""
    from eoreps.hyper.augment import AugmentConfig
    from eoreps.hyper.window_module import window_views
    from eoreps.hyper.window_tokens import TensorScaler, WindowTokenizer
    from eoreps.zoo.architectures import make_arch

    tok = WindowTokenizer(make_arch("cnn_s", (1, 28, 28), 10).param_shapes(), 64)
    W = torch.randn(5, tok.num_params)
    scaler = TensorScaler(torch.zeros(len(tok.sizes)), torch.ones(len(tok.sizes)))
    gen = torch.Generator().manual_seed(3)
    v1, t1, v2, t2, pos, mask = window_views(W, tok, scaler, 16, AugmentConfig(permute=False, noise=0.0,
                                                                                erase_prob=0.0), gen)
    assert v1.shape == (5, 16, 64) and (pos == pos[:1]).all() and (mask == mask[:1]).all()
    start = next(s for s in range(tok.n_tokens - 15) if torch.equal(tok.positions[s:s + 16], pos[0]))
    assert torch.equal(t1, tok.tokenize(W, start, 16)) and torch.equal(v1, t1) and torch.equal(v2, t2)


def test_permutable_chains_warn_and_permute_nothing_without_a_rebuilt_member(tiny_zoo, monkeypatch) -> None:
    from eoreps.hyper.window_fit import permutable_chains
    from eoreps.hyper.window_tokens import WindowTokenizer
    from eoreps.zoo.modelzoo import ModelZoo

    zoo = ModelZoo(tiny_zoo)
    tok = WindowTokenizer(zoo.param_order, 32, chains=[])
    assert permutable_chains(tok, zoo)  # the digits CNN has verified chains
    monkeypatch.setitem(zoo.manifest, "in_shape", None)  # a manifest this eoreps cannot rebuild from
    with pytest.warns(RuntimeWarning, match=f"{re.escape(str(tiny_zoo))}: cannot rebuild a member"):
        assert permutable_chains(tok, zoo) == []
    monkeypatch.undo()

    def mismatched(i: int) -> torch.nn.Module:  # load_state_dict's error for weights of another layout
        raise RuntimeError("Error(s) in loading state_dict: size mismatch for conv.weight")

    monkeypatch.setattr(zoo, "build_model", mismatched)
    with pytest.warns(RuntimeWarning, match="RuntimeError: Error.s. in loading state_dict"):
        assert permutable_chains(tok, zoo) == []


def test_window_readout_tokens_is_written_and_evaluated(tiny_zoo, tmp_path, capsys):
    """``--window-readout tokens`` lands in hyper.json, the loaded representation's ``learned`` is the
    per-layer token means, and hyper evaluate probes it; an unknown readout is one line, exit 2."""
    from eoreps.zoo.modelzoo import ModelZoo

    out = tmp_path / "rep"
    with pytest.raises(SystemExit) as e:
        main(["hyper", "fit", "--zoo", str(tiny_zoo), "--out", str(out), *FIT, "--window-readout", "tokens"])
    assert e.value.code in (0, None)
    assert json.loads((out / "hyper.json").read_text())["window_readout"] == "tokens"
    rep = load_representation(out)
    W = ModelZoo(tiny_zoo).weights_matrix()[:3]
    _, blocks = rep.embed_blocks(W)
    torch.testing.assert_close(blocks, rep.token_layer_means(W))
    assert blocks.shape[1] == rep.blocks_dim == len(rep.window_tokenizer.layers) * rep.net.cfg.enc_layers \
        * rep.net.cfg.d_model
    with pytest.raises(SystemExit) as e:
        main(["hyper", "evaluate", "--zoo", str(tiny_zoo), "--rep", str(out), "--out", str(tmp_path / "ev")])
    assert e.value.code in (0, None)
    capsys.readouterr()
    # the same fit read with the spread: hyper.json's readout is what the loaded representation uses
    meta = json.loads((out / "hyper.json").read_text())
    (out / "hyper.json").write_text(json.dumps({**meta, "window_readout": "tokens-spread"}))
    spread = load_representation(out)
    _, blocks2 = spread.embed_blocks(W)
    torch.testing.assert_close(blocks2, spread.token_layer_moments(W)[:, :, [0, 2]].flatten(1))
    assert blocks2.shape[1] == spread.blocks_dim == 2 * blocks.shape[1]
    _run(["hyper", "evaluate", "--zoo", str(tiny_zoo), "--rep", str(out), "--out", str(tmp_path / "ev2"),
          "--quick"], capsys)
    table = pd.read_csv(tmp_path / "ev2" / "properties.csv").set_index("property")
    assert pd.notna(table.loc["test accuracy", "learned"])
    _fails(["hyper", "fit", "--zoo", str(tiny_zoo), "--out", str(tmp_path / "r2"), *FIT, "--window-readout",
            "median"], capsys, "--window-readout 'median'")
    _fails(["hyper", "fit", "--zoo", str(tiny_zoo), "--out", str(tmp_path / "r3"), "--quick",
            "--window-readout", "tokens"], capsys, "tokenizer")


def test_window_latent_tokens_fits_evaluates_and_refuses_to_sample(tiny_zoo, tmp_path, capsys, monkeypatch):
    """``--window-latent tokens`` (a code per weight token) lands in the plan and hyper.json, the loaded model
    has the token bottleneck, hyper evaluate probes it; hyper sample is one line, exit 2; resuming with the
    other latent, an unknown latent and the latent with the per-neuron tokenizer are one line each."""
    out = tmp_path / "rep"
    _run(["hyper", "fit", "--zoo", str(tiny_zoo), "--out", str(out), *FIT, "--window-latent", "tokens",
          "--window-readout", "tokens"], capsys)
    assert json.loads((out / "hyper.json").read_text())["window_latent"] == "tokens"
    assert json.loads((out / "fit_plan.json").read_text())["window_latent"] == "tokens"
    rep = load_representation(out)
    assert isinstance(rep, WindowRepresentation) and rep.net.latent == "tokens"
    _run(["hyper", "evaluate", "--zoo", str(tiny_zoo), "--rep", str(out), "--out", str(tmp_path / "e"),
          "--quick"], capsys)
    table = pd.read_csv(tmp_path / "e" / "properties.csv").set_index("property")
    assert pd.notna(table.loc["test accuracy", "learned"])
    import eoreps.zoo.modelzoo as modelzoo

    with monkeypatch.context() as mp:  # refused before the zoo is read
        mp.setattr(modelzoo, "ModelZoo", lambda *a, **k: pytest.fail("hyper sample read the zoo"))
        _fails(["hyper", "sample", "--zoo", str(tiny_zoo), "--rep", str(out), "--out", str(tmp_path / "s"),
                "--quick"], capsys, "window_latent 'tokens'")
    _fails(["hyper", "fit", "--zoo", str(tiny_zoo), "--out", str(out), *FIT, "--window-readout", "tokens"],
           capsys, "window_latent")
    _fails(["hyper", "fit", "--zoo", str(tiny_zoo), "--out", str(tmp_path / "r2"), *FIT, "--window-latent",
            "neuron"], capsys, "--window-latent 'neuron'")
    _fails(["hyper", "fit", "--zoo", str(tiny_zoo), "--out", str(tmp_path / "r3"), "--quick",
            "--window-latent", "tokens"], capsys, "tokenizer")
