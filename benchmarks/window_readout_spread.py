"""Token readouts with spread, from a saved windowed representation (issue 23, docs/hyper.md, eighth session).

The ``tokens`` readout (:meth:`WindowRepresentation.token_layer_means`) averages every encoder block's token
outputs over the tokens of each tokenizer layer. This script adds, per layer, the standard deviation and the
mean absolute value of the same outputs (the spread that s(W)'s per-tensor statistics keep and a mean loses)
and probes test accuracy with each variant, with the probes of ``hyper_window_compare.py``
(:func:`hyper_window_compare.score`: ridge with the regularisation chosen on the validation models, R^2 and
Kendall's tau on the test models, split by model, seed 0; and the held-out protocol).

Usage::

    python benchmarks/hyper_window_compare.py --zoo ZOO --methods window --steps 10000 --save-model REP
    python benchmarks/window_readout_spread.py --zoo ZOO --rep REP_seed0 [--json OUT.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hyper_window_compare import model_split, positive_int, score  # noqa: E402


def readouts(moments: np.ndarray) -> dict[str, np.ndarray]:
    """(N, n_layers, 3, C) per-layer mean, std and mean |h| of the token outputs
    (:meth:`WindowRepresentation.token_layer_moments`) -> the probed variants, (N, features) each."""
    from eoreps.hyper.window_representation import SPREAD_MOMENTS

    n = len(moments)
    return {"tokens (mean)": moments[:, :, 0].reshape(n, -1), "tokens std": moments[:, :, 1].reshape(n, -1),
            "tokens mean + std": moments[:, :, [0, 1]].reshape(n, -1),
            "tokens mean + abs": moments[:, :, list(SPREAD_MOMENTS)].reshape(n, -1)}  # tokens-spread


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zoo", type=Path, required=True)
    ap.add_argument("--rep", type=Path, required=True, help="a --save-model folder (hyper_window_compare)")
    ap.add_argument("--threads", type=positive_int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from eoreps.errors import DataError
    from eoreps.hyper.features import weight_statistics
    from eoreps.hyper.representation import load_representation
    from eoreps.hyper.window_representation import WindowRepresentation
    from eoreps.io import check_out_file
    from eoreps.zoo.modelzoo import ModelZoo

    if args.json:
        check_out_file(args.json, "--json")
    torch.set_num_threads(args.threads)
    rep = load_representation(args.rep)
    if not isinstance(rep, WindowRepresentation):
        raise DataError(f"{args.rep}: a per-neuron representation; pass one fitted with --tokenizer window")
    zoo = ModelZoo(args.zoo)
    rep.check_compatible(zoo.param_order, str(args.zoo))
    W, props = zoo.weights_matrix(), zoo.properties
    split, ids = model_split(props)
    y = props["test_acc"].to_numpy(np.float64)
    feats = {"s(W)": weight_statistics(W, zoo.param_order).numpy(),
             **readouts(rep.token_layer_moments(W).numpy())}
    rows = []
    for name, x in feats.items():
        rows.append({"features": name, "dim": x.shape[1], **score(x, y, split, ids)})
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
