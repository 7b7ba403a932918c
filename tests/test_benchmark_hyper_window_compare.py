"""``benchmarks/hyper_window_compare.py``: the windowed readouts (window means and per-layer means) and its
scores (Kendall's tau from :func:`eoreps.hyper.probes.kendall_tau`, the JSON it writes)."""

from __future__ import annotations

import json

import numpy as np
import torch

from eoreps.hyper.autoencoder import ModelConfig
from eoreps.hyper.window_autoencoder import WindowAutoencoder
from eoreps.hyper.window_representation import WindowRepresentation
from eoreps.hyper.window_tokens import TensorScaler, WindowTokenizer

ORDER = [("a.weight", (16, 8)), ("a.bias", (16,)), ("b.weight", (16, 16)), ("b.bias", (16,)),
         ("c.weight", (4, 16))]



def test_window_readouts_are_the_window_means_and_the_per_layer_means(bench_script):
    torch.manual_seed(0)
    tok = WindowTokenizer(ORDER, 8, chains=[])
    W = torch.randn(5, tok.num_params)
    cfg = ModelConfig(d_model=16, n_heads=2, enc_layers=1, dec_layers=1, latent_dim=8, proj_dim=8)
    rep = WindowRepresentation({"config": {"precision": "fp32"}, "window_readout": "layer"}, tok,
                               TensorScaler.fit(tok, W),
                               WindowAutoencoder(tok.width, tok.table_sizes, cfg).eval(), 8)
    feats = bench_script("hyper_window_compare").window_readouts(rep, W, batch_size=4)
    z, blocks = rep.embed_blocks(W)
    torch.testing.assert_close(feats["z"], z)
    torch.testing.assert_close(feats["learned/layer"], blocks)  # the representation's default readout
    rep.readout = "mean"
    torch.testing.assert_close(feats["learned"], rep.embed_blocks(W)[1])
    codes, block_codes = rep.window_codes(W)
    layer_of = [int(tok.positions[s, 0]) for s in rep.starts]
    layers = sorted(set(layer_of))
    assert len(layers) > 1  # the windows start in several layers
    for name, c in (("z/layer", codes), ("learned/layer", block_codes)):  # literal per-layer averages
        cols = [[i for i, li in enumerate(layer_of) if li == layer] for layer in layers]
        want = torch.cat([c[:, idx].mean(1) for idx in cols], 1)
        torch.testing.assert_close(feats[name], want)


class _Zoo:
    """What ``main`` reads of a zoo: 40 models x 2 epochs, weights that carry the test accuracy."""

    param_order = [("a.weight", (4, 3)), ("a.bias", (4,))]

    def __init__(self, path) -> None:
        import numpy as np
        import pandas as pd

        rng = np.random.default_rng(0)
        mid = np.repeat(np.arange(40), 2)
        acc = rng.uniform(0.1, 0.9, len(mid))
        self.properties = pd.DataFrame({"model_id": mid, "epoch": np.tile([0.0, 1.0], 40), "test_acc": acc})
        w = rng.normal(size=(len(mid), 16))
        w[:, 0] = acc + rng.normal(0, 0.1, len(mid))
        self._W = torch.tensor(w, dtype=torch.float32)

    def weights_matrix(self) -> torch.Tensor:
        return self._W


class _Rep:
    def embed_blocks(self, W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return W[:, :3], W[:, 3:8]


def test_main_scores_with_the_library_kendall_tau_and_keeps_its_json(bench_script, monkeypatch, tmp_path):
    import eoreps.hyper.probes as probes
    import eoreps.zoo.modelzoo as modelzoo

    bench = bench_script("hyper_window_compare")
    calls = []
    real = probes.kendall_tau
    monkeypatch.setattr(probes, "kendall_tau", lambda y, p: (calls.append((y, p)), real(y, p))[1])
    monkeypatch.setattr(modelzoo, "ModelZoo", _Zoo)
    monkeypatch.setattr(bench, "fit_module", lambda *a, **k: _Rep())
    out = tmp_path / "out.json"
    monkeypatch.setattr("sys.argv", ["hyper_window_compare.py", "--zoo", str(tmp_path), "--methods", "neuron",
                                     "--json", str(out), "--save-features", str(tmp_path / "f.npz")])
    bench.main()
    res = json.loads(out.read_text())
    saved = np.load(tmp_path / "f_neuron_seed0.npz")
    assert set(saved.files) == {"split", "test_acc", "epoch", "model_id", "sw", "z", "learned"}
    assert saved["learned"].shape == (len(saved["test_acc"]), 5)
    assert set(res) == {"command", "zoo", "checkpoints", "models", "cpu", "torch_threads", "args", "rows"}
    assert res["args"]["seeds"] == "0" and res["args"]["methods"] == "neuron"  # as typed
    assert [r["features"] for r in res["rows"]] == ["s(W)", "neuron z", "neuron learned"]
    assert set(res["rows"][0]) == {"features", "seed", "r2_test_acc", "kendall_tau_test_acc", "r2_epoch",
                                   "r2_test_acc_heldout", "kendall_tau_heldout"}
    assert set(res["rows"][1]) == {*res["rows"][0], "fit_s"}
    # two taus per row (test split, held-out models), from eoreps.hyper.probes (no copy in the script)
    assert len(calls) == 6
    assert [r["kendall_tau_test_acc"] for r in res["rows"]] == [real(y, p) for y, p in calls[0::2]]
    assert [r["kendall_tau_heldout"] for r in res["rows"]] == [real(y, p) for y, p in calls[1::2]]
    assert all(len(y) > 0.25 * res["checkpoints"] for y, _ in calls[1::2])  # validation + test models
    assert res["rows"][1]["kendall_tau_test_acc"] > 0.5  # z holds the weight that carries the accuracy


def _rep(window: int = 8) -> tuple[WindowTokenizer, torch.Tensor, WindowRepresentation]:
    torch.manual_seed(0)
    tok = WindowTokenizer(ORDER, 8, chains=[])
    W = torch.randn(5, tok.num_params)
    cfg = ModelConfig(d_model=16, n_heads=2, enc_layers=2, dec_layers=1, latent_dim=8, proj_dim=8)
    return tok, W, WindowRepresentation({"config": {"precision": "fp32"}, "window_readout": "layer"}, tok,
                                        TensorScaler.fit(tok, W),
                                        WindowAutoencoder(tok.width, tok.table_sizes, cfg).eval(), window)


def _per_layer_outputs(rep: WindowRepresentation, W: torch.Tensor, k: int, bf16: bool = False
                       ) -> list[torch.Tensor]:
    """Every token output of each tokenizer layer, one window at a time (a slow transcription of the token
    readouts): per layer (M, tokens of the layer, 2 * d); a token of two windows appears twice."""
    tok = rep.window_tokenizer
    per_layer: list[list[torch.Tensor]] = [[] for _ in tok.layers]
    for s in rep.starts:
        pos, ids, mask = (v.expand(len(W), *v.shape[1:]) for v in rep._windows([s]))  # (M, K, .)
        x = rep.scaler.transform(tok.tokenize(W, s, k), ids[0], mask[0])
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            h = rep.net.encode_tokens(x, pos, mask)[2].float()  # (M, K, 2 * d)
        for j in range(k):
            per_layer[int(tok.positions[s + j, 0])].append(h[:, j])
    return [torch.stack(outs, 1) for outs in per_layer]


def _literal_token_means(rep: WindowRepresentation, W: torch.Tensor, k: int, bf16: bool = False
                         ) -> torch.Tensor:
    return torch.cat([h.mean(1) for h in _per_layer_outputs(rep, W, k, bf16)], 1)


def test_token_layer_means_average_every_token_output_of_each_layer_literally():
    tok, W, rep = _rep(window=12)  # 12 does not divide the tokens: the last window overlaps
    got = rep.token_layer_means(W, batch_size=3)
    want = _literal_token_means(rep, W, 12)
    assert rep.starts[-1] + 12 == tok.n_tokens and len(rep.starts) * 12 > tok.n_tokens  # overlap exists
    assert got.shape == (len(W), len(tok.layers) * 2 * 16)
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got[0], got[1])  # models differ


def test_token_layer_means_in_bf16_follow_the_literal_readout_and_stay_near_fp32():
    """A representation fitted in bf16 reads its tokens under bf16 autocast: the same values as the literal
    window-by-window readout in bf16 (up to bf16 rounding of differently batched products), and within
    bf16's precision of the fp32 readout (LayerNorm'd outputs of order 1: 0.05 absolute)."""
    tok, W, rep = _rep(window=12)
    fp32 = rep.token_layer_means(W, batch_size=3)
    rep.meta["config"]["precision"] = "bf16"  # as hyper.json of a bf16 fit
    assert rep.bf16
    got = rep.token_layer_means(W, batch_size=3)
    assert got.dtype == torch.float32 and not torch.equal(got, fp32)  # bf16 ran
    torch.testing.assert_close(got, _literal_token_means(rep, W, 12, bf16=True), rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(got, fp32, rtol=0.0, atol=0.05)


def test_saved_window_representation_loads_back_with_the_same_codes(bench_script, tmp_path):
    from safetensors.torch import load_file

    from eoreps.hyper.window_representation import load_window_representation

    _, W, rep = _rep()
    bench_script("hyper_window_compare").save_window_representation(rep, tmp_path / "rep")
    meta = __import__("json").loads((tmp_path / "rep" / "hyper.json").read_text())
    state = load_file(str(tmp_path / "rep" / "model.safetensors"))
    back = load_window_representation(tmp_path / "rep", meta, state)
    back.net.eval()
    for a, b in zip(rep.embed_blocks(W), back.embed_blocks(W), strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(rep.token_layer_means(W), back.token_layer_means(W))


def test_tokens_readout_is_the_token_layer_means_and_keeps_z():
    tok, W, rep = _rep(window=12)
    z, _ = rep.embed_blocks(W)
    want = rep.token_layer_means(W)
    rep.readout = "tokens"
    z2, blocks = rep.embed_blocks(W, batch_size=5)
    torch.testing.assert_close(z2, z)  # the decodable code does not depend on the readout
    torch.testing.assert_close(blocks, want)
    assert blocks.shape == (len(W), rep.blocks_dim) == (len(W), len(tok.layers) * 2 * 16)


def test_tokens_spread_readout_is_each_layers_token_mean_then_mean_abs(bench_script):
    """``window_readout: tokens-spread``: per tokenizer layer, in layer order, the mean of every block's token
    outputs then their mean absolute value, computed literally; z is unchanged; the benchmark's
    ``tokens-spread/layer`` is the same readout and ``tokens/layer`` the token means."""
    tok, W, rep = _rep(window=12)
    z, _ = rep.embed_blocks(W)
    rep.readout = "tokens-spread"
    z2, blocks = rep.embed_blocks(W, batch_size=5)
    torch.testing.assert_close(z2, z)
    want = torch.cat([torch.cat([h.mean(1), h.abs().mean(1)], 1) for h in _per_layer_outputs(rep, W, 12)], 1)
    torch.testing.assert_close(blocks, want)
    assert blocks.shape == (len(W), rep.blocks_dim) == (len(W), len(tok.layers) * 2 * 2 * 16)
    feats = bench_script("hyper_window_compare").window_readouts(rep, W, batch_size=5)
    torch.testing.assert_close(feats["tokens-spread/layer"], blocks)
    torch.testing.assert_close(feats["tokens/layer"], rep.token_layer_means(W))


def test_heldout_probe_scores_val_and_test_models_with_alpha_from_grouped_folds(bench_script):
    """The held-out protocol: predictions for exactly the validation + test rows, from a ridge fitted on the
    training rows with one of the grid's alphas; a feature that carries the target scores high, noise does
    not; its R^2 and tau are those of its predictions."""
    from sklearn.linear_model import Ridge

    from eoreps.hyper.linear import ALPHAS, Standardizer, r2_score
    from eoreps.hyper.probes import kendall_tau

    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), 3)
    split = np.where(groups < 28, "train", np.where(groups < 34, "val", "test"))
    y = rng.normal(size=len(groups))
    good = np.c_[y + 0.1 * rng.normal(size=len(y)), rng.normal(size=(len(y), 4))]
    bench = bench_script("hyper_window_compare")
    r2, tau, pred = bench.heldout_probe(good, y, split, groups)
    ho = split != "train"
    assert pred.shape == (ho.sum(),) and r2 > 0.9 and tau > 0.7
    assert r2 == r2_score(y[ho], pred) and tau == kendall_tau(y[ho], pred)
    st = Standardizer.fit(good[~ho])
    assert any(np.allclose(Ridge(alpha=a).fit(st(good[~ho]), y[~ho]).predict(st(good[ho])), pred)
               for a in ALPHAS)
    assert bench.heldout_probe(rng.normal(size=(len(y), 5)), y, split, groups)[0] < 0.2


def test_saved_token_latent_representation_loads_back_with_its_latent(bench_script, tmp_path):
    from safetensors.torch import load_file

    from eoreps.hyper.window_representation import load_window_representation

    tok, W, rep = _rep()
    rep.net = WindowAutoencoder(tok.width, tok.table_sizes, rep.net.cfg, latent="tokens").eval()
    bench_script("hyper_window_compare").save_window_representation(rep, tmp_path / "rep")
    meta = json.loads((tmp_path / "rep" / "hyper.json").read_text())
    assert meta["window_latent"] == "tokens"
    state = load_file(str(tmp_path / "rep" / "model.safetensors"))
    back = load_window_representation(tmp_path / "rep", meta, state)
    assert back.net.latent == "tokens"
    back.net.eval()
    for a, b in zip(rep.embed_blocks(W), back.embed_blocks(W), strict=True):
        torch.testing.assert_close(a, b)


def test_outputs_it_cannot_write_are_one_line_before_any_fit(tmp_path):
    """A --json path that is a folder, a --save-model folder that is a file, a --save-features file under a
    file: one line on stderr, exit 2, before the zoo is read (the --zoo here does not exist)."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "hyper_window_compare.py"
    (tmp_path / "f").write_text("x")
    (tmp_path / "m_seed0").write_text("x")
    cases = [(["--json", str(tmp_path)], "--json is an existing folder"),
             (["--save-model", str(tmp_path / "m")], "--save-model is an existing file"),
             (["--save-features", str(tmp_path / "f" / "x.npz")],
              f"cannot write the --save-features file because {tmp_path / 'f'} is a file")]
    for extra, says in cases:
        r = subprocess.run([sys.executable, str(script), "--zoo", str(tmp_path / "nozoo"), *extra],
                           capture_output=True, text=True, timeout=120)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2 and len(lines) == 1 and says in lines[0], r.stderr
        assert lines[0].startswith("hyper_window_compare: error: ")
    for extra, says in ((["--seeds", "0,x"], "--seeds"), (["--seeds", "1,1"], "--seeds"),
                        (["--methods", "window,neurons"], "--methods"), (["--threads", "0"], "--threads")):
        r = subprocess.run([sys.executable, str(script), "--zoo", str(tmp_path / "nozoo"), *extra],
                           capture_output=True, text=True, timeout=120)  # argparse's usage error
        last = r.stderr.splitlines()[-1]
        assert r.returncode == 2 and "Traceback" not in r.stderr and says in last, r.stderr


def test_token_layer_moments_are_the_token_means_and_their_spread(bench_script):
    """``WindowRepresentation.token_layer_moments``: its mean is the token readout, its std and mean |h|
    those of the token outputs of each layer, computed literally (the overlapping last window counted
    twice, as the readout does); ``window_readout_spread.readouts`` slices the variants from it."""
    tok, W, rep = _rep(window=12)
    mom = rep.token_layer_moments(W, batch_size=3)
    assert mom.shape == (len(W), len(tok.layers), 3, 2 * 16)
    torch.testing.assert_close(mom[:, :, 0].flatten(1), rep.token_layer_means(W))
    for li, h in enumerate(_per_layer_outputs(rep, W, 12)):
        torch.testing.assert_close(mom[:, li, 1], h.std(1, unbiased=False), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(mom[:, li, 2], h.abs().mean(1))
    assert (mom[:, :, 1] > 0).any()  # layers of several tokens spread
    got = bench_script("window_readout_spread").readouts(mom.numpy())
    n = len(W)
    assert np.array_equal(got["tokens mean + abs"],
                          np.concatenate([mom[:, :, 0].numpy(), mom[:, :, 2].numpy()], 2).reshape(n, -1))
    assert got["tokens mean + std"].shape == (n, len(tok.layers) * 2 * 2 * 16)
