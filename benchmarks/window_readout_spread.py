"""Token readouts with spread, from a saved windowed representation (issue 23, docs/hyper.md, eighth session).

The ``tokens`` readout (:meth:`WindowRepresentation.token_layer_means`) averages every encoder block's token
outputs over the tokens of each tokenizer layer. This script adds, per layer, the standard deviation and the
mean absolute value of the same outputs (the spread that s(W)'s per-tensor statistics keep and a mean loses)
and probes test accuracy with each variant, with the probes of ``hyper_window_compare.py``: ridge with the
regularisation chosen on the validation models (R^2, Kendall's tau on the test models, split by model, seed
0) and the held-out protocol (:func:`hyper_window_compare.heldout_probe`).

Usage::

    python benchmarks/hyper_window_compare.py --zoo ZOO --methods window --steps 10000 --save-model REP
    python benchmarks/window_readout_spread.py --zoo ZOO --rep REP_seed0 [--json OUT.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hyper_window_compare import heldout_probe  # noqa: E402


@torch.no_grad()
def token_layer_moments(rep: Any, W: torch.Tensor, group: int = 8) -> dict[str, np.ndarray]:
    """(N, D) weights -> ``{"mean", "std", "abs"}``, each (N, n_layers, enc_layers * d): per tokenizer layer
    the mean, standard deviation and mean absolute value of every block's token outputs, one window at a
    time for ``group`` models (tokens two windows share count twice, as in ``token_layer_means``)."""
    tok, k = rep.window_tokenizer, rep.window
    c, n_layers = rep.net.cfg.enc_layers * rep.net.cfg.d_model, len(tok.layers)
    out: dict[str, list[torch.Tensor]] = {"mean": [], "std": [], "abs": []}
    for w in torch.split(W.float(), group):
        m = len(w)
        s1, s2, sa = (torch.zeros(m, n_layers, c) for _ in range(3))
        n = torch.zeros(n_layers)
        for s in rep.starts:
            pos, ids, mask = rep._windows([s])  # (1, K, .)
            x = rep.scaler.transform(tok.tokenize(w, s, k)[:, None], ids, mask).flatten(0, 1)  # (m, K, W)
            p2, m2 = (v.expand(m, *v.shape[1:]) for v in (pos, mask))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=rep.bf16):
                h = rep.net.encode_tokens(x, p2, m2)[2].float()  # (m, K, c)
            layer = pos[0, :, 0]
            s1.index_add_(1, layer, h)
            s2.index_add_(1, layer, h * h)
            sa.index_add_(1, layer, h.abs())
            n.index_add_(0, layer, torch.ones(len(layer)))
        n = n.clamp_min(1)[None, :, None]
        mean = s1 / n
        out["mean"].append(mean)
        out["std"].append((s2 / n - mean ** 2).clamp_min(0).sqrt())
        out["abs"].append(sa / n)
    return {key: torch.cat(v).numpy() for key, v in out.items()}


def readouts(mom: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The probed variants, (N, features) each."""
    n = len(mom["mean"])
    return {"tokens (mean)": mom["mean"].reshape(n, -1), "tokens std": mom["std"].reshape(n, -1),
            "tokens mean + std": np.concatenate([mom["mean"], mom["std"]], 2).reshape(n, -1),
            "tokens mean + abs": np.concatenate([mom["mean"], mom["abs"]], 2).reshape(n, -1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zoo", type=Path, required=True)
    ap.add_argument("--rep", type=Path, required=True, help="a --save-model folder (hyper_window_compare)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from safetensors.torch import load_file

    from eoreps.hyper.features import weight_statistics
    from eoreps.hyper.linear import ridge_probe
    from eoreps.hyper.probes import kendall_tau
    from eoreps.hyper.splits import split_models
    from eoreps.hyper.window_representation import load_window_representation
    from eoreps.io import read_json
    from eoreps.zoo.modelzoo import ModelZoo

    torch.set_num_threads(args.threads)
    rep = load_window_representation(args.rep, read_json(args.rep / "hyper.json"),
                                     load_file(str(args.rep / "model.safetensors")))
    rep.net.eval()
    zoo = ModelZoo(args.zoo)
    W, props = zoo.weights_matrix(), zoo.properties
    ids = props["model_id"].astype(int).to_numpy()
    names = split_models(sorted(set(ids)))
    split = np.array([names[i] for i in ids])
    tr, va, te = (np.flatnonzero(split == s) for s in ("train", "val", "test"))
    y = props["test_acc"].to_numpy(np.float64)
    feats = {"s(W)": weight_statistics(W, zoo.param_order).numpy(), **readouts(token_layer_moments(rep, W))}
    rows = []
    for name, x in feats.items():
        x = np.asarray(x, dtype=np.float64)
        acc = ridge_probe(x[tr], y[tr, None], x[va], y[va, None], x[te], y[te, None])[0]
        r2_ho, tau_ho, _ = heldout_probe(x, y, split, ids)
        rows.append({"features": name, "dim": x.shape[1], "r2_test_acc": acc.r2,
                     "kendall_tau_test_acc": kendall_tau(y[te], acc.pred_test),
                     "r2_test_acc_heldout": r2_ho, "kendall_tau_heldout": tau_ho})
        print(rows[-1], flush=True)
    if args.json:
        from eoreps.io import write_json

        write_json(args.json, {"command": "python " + " ".join(sys.argv), "zoo": str(args.zoo),
                               "rep": str(args.rep), "rows": rows})


if __name__ == "__main__":
    from eoreps.errors import EoRepsError

    try:
        main()
    except EoRepsError as e:  # a zoo or representation folder that is not one: one line
        print(f"window_readout_spread: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
