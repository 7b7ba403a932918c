"""s(W) vs per-neuron vs windowed hyper-representation on one zoo, same training budget (issue 23, item 3).

Fits the per-neuron (:class:`eoreps.hyper.module.HyperModule`) and the windowed
(:class:`eoreps.hyper.window_module.WindowModule`) representation for the same number of steps, batch size,
model size and learning-rate schedule (AdamW, 5 % linear warm-up then cosine, as the modules'
``configure_optimizers``), each step through the module's own ``_step`` (views, augmentation, loss). The loop
is a plain one instead of ``hyper fit``'s Lightning trainer so that both fits get exactly the same number of
steps on a zoo of any size; ``hyper fit`` trains the same modules by epochs. Both representations are then
embedded with their :class:`~eoreps.hyper.representation.Representation` (windowed: mean over the windows
covering the model) and probed with ``hyper evaluate``'s ridge probe (regularisation chosen on validation
models) for test accuracy and epoch on the test models of the split by model (seed 0, 15 % / 15 %): R^2
and Kendall's tau of the predictions, for s(W), ``z`` and ``learned`` (the compression token after every
encoder block). With 15 test models that estimate is noisy, so every row also carries ``*_heldout``: R^2
and tau on the validation and test models together, the ridge's regularisation chosen by cross-validation
over the training models (:func:`heldout_probe`). ``--layer-readout`` adds, for the windowed representation,
``z/layer`` and ``learned/layer``: the window codes averaged per layer of the tokenizer and concatenated,
``tokens/layer``: the per-layer means of the encoder's token outputs, and ``tokens-spread/layer``: those
means with the per-layer mean absolute values (:func:`window_readouts`).

Usage::

    python benchmarks/hyper_window_compare.py --zoo ZOO --steps 1000 --seeds 0,1 --json OUT.json

Build a reduced mnist-cnn-s zoo first, e.g. ``python benchmarks/hyper_mnist.py --n-models 500 --zoo-epochs 5``
(its zoo stage; 234 s on 2 cores) or ``eoreps zoo build``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _schedule(opt: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    warm = max(1, steps // 20)

    def lam(s: int) -> float:
        if s < warm:
            return (s + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warm) / max(1, steps - warm))))

    return torch.optim.lr_scheduler.LambdaLR(opt, lam)


def fit_module(method: str, zoo: Any, W_train: torch.Tensor, args: argparse.Namespace, seed: int) -> Any:
    """A per-neuron or windowed representation fitted for ``args.steps`` steps on ``W_train``."""
    from eoreps.hyper.augment import AugmentConfig
    from eoreps.hyper.autoencoder import ModelConfig
    from eoreps.optim import adamw

    torch.manual_seed(seed)
    model = ModelConfig(d_model=args.d_model, n_heads=max(1, args.d_model // 32), enc_layers=args.layers,
                        dec_layers=args.layers, latent_dim=args.latent_dim, proj_dim=args.latent_dim)
    hp = (AugmentConfig(), args.gamma, 0.1, args.lr, 1e-4)
    meta = {"config": {"precision": "fp32"}, "architecture": zoo.manifest.get("architecture")}
    if method == "window":
        from eoreps.hyper.window_fit import permutable_chains
        from eoreps.hyper.window_module import WindowModule, window_module_kwargs
        from eoreps.hyper.window_representation import WindowRepresentation
        from eoreps.hyper.window_tokens import TensorScaler, WindowTokenizer

        tok = WindowTokenizer(zoo.param_order, args.token_width, chains=[])
        tok = WindowTokenizer(tok.param_order, tok.width, chains=permutable_chains(tok, zoo))
        sc = TensorScaler.fit(tok, W_train)
        mod: Any = WindowModule(**window_module_kwargs(tok, args.window, model, *hp, latent=args.latent),
                                scaler_mean=sc.mean, scaler_std=sc.std)
    else:
        from eoreps.hyper.module import HyperModule, module_kwargs
        from eoreps.hyper.representation import Representation
        from eoreps.hyper.tokens import Tokenizer, TokenScaler

        sc = TokenScaler.fit(Tokenizer(zoo.param_order), W_train)
        mod = HyperModule(**module_kwargs([[k, list(s)] for k, s in zoo.param_order], model, *hp),
                          scaler_mean=sc.mean, scaler_std=sc.std)
    opt = adamw(mod.parameters(), lr=args.lr, weight_decay=1e-4)  # the library's (fused since 2026-12-07)
    sched = _schedule(opt, args.steps)
    g = torch.Generator().manual_seed(seed)
    mod.train()
    for _ in range(args.steps):
        loss = mod._step((W_train[torch.randint(0, len(W_train), (args.batch_size,), generator=g)],))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    mod.eval()
    if method == "window":
        return WindowRepresentation(meta, mod.tokenizer, mod.scaler, mod.net, mod.window)
    return Representation(meta, mod.tokenizer, mod.scaler, mod.net)


def save_window_representation(rep: Any, root: Path, zoo: Path | None = None,
                               split: dict[int, str] | None = None) -> None:
    """Write a fitted :class:`WindowRepresentation` as ``hyper.json`` + ``model.safetensors`` in the keys
    :func:`eoreps.hyper.window_representation.load_window_representation` reads; with the ``zoo`` it was
    fitted on and its ``split`` (model id -> train / val / test) also ``zoo_path`` and ``splits.csv``, as
    ``hyper fit`` writes them, so ``hyper evaluate`` on that zoo knows the split is the fit's own."""
    import pandas as pd
    from safetensors.torch import save_file

    from eoreps.io import atomic_path, write_json

    root.mkdir(parents=True, exist_ok=True)
    if zoo is not None and split is not None:
        with atomic_path(root / "splits.csv") as tmp:
            pd.DataFrame({"model_id": list(split), "split": list(split.values())}).to_csv(tmp, index=False)
    meta = {**rep.meta, **({"zoo_path": str(zoo.resolve())} if zoo is not None and split is not None else {}),
            "tokenizer": "window", "window_tokenizer": rep.window_tokenizer.to_dict(),
            "model": rep.net.cfg.to_dict(), "window": rep.window, "window_readout": rep.readout,
            "window_latent": rep.net.latent}
    state = {k: v.contiguous() for k, v in rep.net.state_dict().items()}
    state |= {"scaler.mean": rep.scaler.mean.contiguous(), "scaler.std": rep.scaler.std.contiguous()}
    if rep.reference is not None:  # an aligned fit's reference (the fits here never align)
        state["align.reference"] = rep.reference.contiguous()
    with atomic_path(root / "model.safetensors") as tmp:
        save_file(state, str(tmp))
    write_json(root / "hyper.json", meta)


@torch.no_grad()
def window_readouts(rep: Any, W: torch.Tensor, batch_size: int = 64) -> dict[str, torch.Tensor]:
    """Readouts of a windowed representation from one pass over every model's window codes: ``z`` and
    ``learned`` (the means over the windows, as ``embed_blocks``) and ``z/layer``, ``learned/layer`` (the
    means over the windows starting in each layer of the tokenizer, concatenated in layer order: one
    vector per layer, so the readout keeps which layer a code came from; its size grows with the number
    of layers, not of windows); ``tokens/layer``: the per-layer means of the encoder's token outputs
    (:meth:`~eoreps.hyper.window_representation.WindowRepresentation.token_layer_means`, SANE's readout) and
    ``tokens-spread/layer``: those means with the per-layer mean absolute values (``window_readout:
    tokens-spread``), both from one pass of
    :meth:`~eoreps.hyper.window_representation.WindowRepresentation.token_layer_moments`."""
    from eoreps.hyper.window_representation import SPREAD_MOMENTS, layer_readout_weights

    onehot = layer_readout_weights(rep.window_tokenizer, rep.starts)  # (L, n_windows)
    per = max(1, batch_size // len(rep.starts))
    out: dict[str, list[torch.Tensor]] = {"z": [], "learned": [], "z/layer": [], "learned/layer": []}
    for i in range(0, len(W), per):
        z, b = rep.window_codes(W[i:i + per], batch_size)  # (m, n_windows, .)
        out["z"].append(z.mean(1))
        out["learned"].append(b.mean(1))
        out["z/layer"].append(torch.einsum("lw,mwc->mlc", onehot, z).flatten(1))
        out["learned/layer"].append(torch.einsum("lw,mwc->mlc", onehot, b).flatten(1))
    res = {k: torch.cat(v) for k, v in out.items()}
    moments = rep.token_layer_moments(W, batch_size)  # (N, n_layers, 3, C)
    res["tokens/layer"] = moments[:, :, 0].flatten(1)
    res["tokens-spread/layer"] = moments[:, :, list(SPREAD_MOMENTS)].flatten(1)
    return res


def heldout_probe(x: np.ndarray, y: np.ndarray, split: np.ndarray, groups: np.ndarray,
                  folds: int = 5) -> tuple[float, float, np.ndarray]:
    """A second, steadier protocol beside the val/test one: ridge on the training models' checkpoints with
    the regularisation chosen by ``folds``-fold cross-validation grouped by model (scikit-learn's
    ``GroupKFold``: no model in two folds), scored on the validation and test models together (twice the
    checkpoints of the test split alone). -> ``(R^2, Kendall's tau, predictions)`` on the held-out rows,
    in row order."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GroupKFold

    from eoreps.hyper.linear import ALPHAS, Standardizer, r2_score
    from eoreps.hyper.probes import kendall_tau

    tr, ho = np.flatnonzero(split == "train"), np.flatnonzero(split != "train")
    a = x[tr]
    best = (-np.inf, ALPHAS[0])
    for alpha in ALPHAS:
        pred = np.zeros(len(tr))
        for i, j in GroupKFold(folds).split(a, groups=groups[tr]):
            sf = Standardizer.fit(a[i])  # per fold: the left-out models do not set the scaling
            pred[j] = Ridge(alpha=alpha).fit(sf(a[i]), y[tr][i]).predict(sf(a[j]))
        r = r2_score(y[tr], pred)
        if r > best[0]:
            best = (r, alpha)
    st = Standardizer.fit(a)
    pred = Ridge(alpha=best[1]).fit(st(a), y[tr]).predict(st(x[ho]))
    return r2_score(y[ho], pred), kendall_tau(y[ho], pred), pred


def model_split(props: Any) -> tuple[np.ndarray, np.ndarray]:
    """A zoo's index -> ``(split, model id)`` per checkpoint: models split as ``hyper evaluate`` splits them
    (:func:`eoreps.hyper.splits.split_models`, seed 0, 15 % / 15 %)."""
    from eoreps.hyper.splits import split_models

    ids = props["model_id"].astype(int).to_numpy()
    names = split_models(sorted(set(ids)))
    return np.array([names[i] for i in ids]), ids


def score(x: np.ndarray, y: np.ndarray, split: np.ndarray, ids: np.ndarray) -> dict[str, float]:
    """Probe features ``x`` (N, F) for ``y``: (N,) test accuracy, or (N, 2) test accuracy and epoch. Ridge
    with the regularisation chosen on the validation models (R^2 and Kendall's tau on the test models, as
    ``hyper evaluate``; R^2 of the epoch when given), then :func:`heldout_probe` for test accuracy."""
    from eoreps.hyper.linear import ridge_probe
    from eoreps.hyper.probes import kendall_tau

    x, y = np.asarray(x, dtype=np.float64), y.reshape(len(y), -1)
    tr, va, te = (np.flatnonzero(split == s) for s in ("train", "val", "test"))
    probes = ridge_probe(x[tr], y[tr], x[va], y[va], x[te], y[te])
    out = {"r2_test_acc": probes[0].r2, "kendall_tau_test_acc": kendall_tau(y[te, 0], probes[0].pred_test)}
    if y.shape[1] > 1:
        out["r2_epoch"] = probes[1].r2
    r2_ho, tau_ho, _ = heldout_probe(x, y[:, 0], split, ids)
    return out | {"r2_test_acc_heldout": r2_ho, "kendall_tau_heldout": tau_ho}


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def add_window_model_args(ap: argparse.ArgumentParser) -> None:
    """The windowed representation's size options (shared with ``zoo_pretrained_predict.py``)."""
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--latent-dim", type=int, default=32)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--token-width", type=int, default=64)
    ap.add_argument("--threads", type=positive_int, default=2)


def _model_dir(args: argparse.Namespace, seed: int) -> Path:
    return args.save_model.with_name(f"{args.save_model.name}_seed{seed}")


def _features_file(args: argparse.Namespace, method: str, seed: int) -> Path:
    return args.save_features.with_name(f"{args.save_features.stem}_{method}_seed{seed}.npz")


def positive_int(text: str) -> int:
    """argparse type of an integer >= 1 (``--threads``)."""
    n = int(text)
    if n < 1:
        raise ValueError(text)
    return n


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any fit, an output the run could not write (a --json path that is a folder, a
    --save-model folder that is a file, an unwritable folder): one :class:`~eoreps.errors.DataError` line."""
    from eoreps.io import check_out_dir, check_out_file

    if args.json:
        check_out_file(args.json, "--json")
    for s in args.seeds:
        for m in args.methods if args.save_features else []:
            check_out_file(_features_file(args, m, s), "--save-features")
        if args.save_model:
            check_out_dir(_model_dir(args, s), "--save-model")


def _list(kind: type, choices: tuple[str, ...] = ()) -> Any:
    """argparse type of a comma-separated list (``'0,1'``), each item a ``kind`` and, with ``choices``, one
    of them: a bad item is argparse's usage error (exit 2)."""
    def parse(text: str) -> list[Any]:
        items = [kind(t) for t in text.split(",")]
        if len(set(items)) < len(items) or any(choices and t not in choices for t in items):
            raise ValueError(text)  # an unknown or repeated item
        return items

    parse.__name__ = f"comma-separated {kind.__name__}" + (f" from {', '.join(choices)}" if choices else "")
    return parse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zoo", type=Path, required=True)
    ap.add_argument("--methods", type=_list(str, ("neuron", "window")), default="neuron,window")
    ap.add_argument("--seeds", type=_list(int), default="0", help="fit seeds, e.g. '0,1'")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--gamma", type=float, default=0.1)
    add_window_model_args(ap)
    from eoreps.hyper.window_autoencoder import LATENTS

    ap.add_argument("--latent", choices=LATENTS, default="window",
                    help="windowed: one code per window (compression token) or per token (SANE)")
    ap.add_argument("--layer-readout", action="store_true",
                    help="windowed: also the per-layer means of the window codes (window_readouts)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--save-model", type=Path, default=None,
                    help="windowed: also save each fitted representation to DIR_seed<seed> (hyper.json + "
                         "model.safetensors, loadable with load_window_representation) to study readouts")
    ap.add_argument("--save-features", type=Path, default=None,
                    help="also write every readout, s(W), test accuracy, epoch and the split to this .npz "
                         "(one file per run: the seed is added to the name), to study readouts")
    args = ap.parse_args()
    check_outputs(args)
    torch.set_num_threads(args.threads)
    from eoreps.hyper.features import weight_statistics
    from eoreps.zoo.modelzoo import ModelZoo

    zoo = ModelZoo(args.zoo)
    W, props = zoo.weights_matrix(), zoo.properties
    split, ids = model_split(props)
    tr = np.flatnonzero(split == "train")
    y = props[["test_acc", "epoch"]].to_numpy(np.float64)
    sw = weight_statistics(W, zoo.param_order).numpy()
    rows = [{"features": "s(W)", "seed": None, **score(sw, y, split, ids)}]
    print(rows[-1], flush=True)
    for method in args.methods:
        for seed in args.seeds:
            t = time.perf_counter()
            rep = fit_module(method, zoo, W[tr], args, seed)
            fit_s = time.perf_counter() - t
            if method == "window" and args.save_model:
                save_window_representation(rep, _model_dir(args, seed), args.zoo,
                                           dict(zip(ids.tolist(), split.tolist(), strict=True)))
            with torch.no_grad():
                if method == "window" and args.layer_readout:
                    feats = window_readouts(rep, W)
                else:
                    z, blocks = rep.embed_blocks(W)
                    feats = {"z": z, "learned": blocks}
            if args.save_features:
                from eoreps.io import atomic_path

                with atomic_path(_features_file(args, method, seed)) as tmp, open(tmp, "wb") as f:
                    np.savez_compressed(f, split=split.astype(str), test_acc=y[:, 0], epoch=y[:, 1],
                                        model_id=ids, sw=sw,
                                        **{k.replace("/", "_"): v.numpy() for k, v in feats.items()})
            for name, x in feats.items():
                rows.append({"features": f"{method} {name}", "seed": seed, **score(x.numpy(), y, split, ids),
                             "fit_s": round(fit_s, 1)})
                print(rows[-1], flush=True)
    n_models = {s: int(props.loc[split == s, "model_id"].nunique()) for s in ("train", "val", "test")}
    out = {"command": "python " + " ".join(sys.argv), "zoo": str(args.zoo), "checkpoints": len(props),
           "models": n_models, "cpu": _cpu(), "torch_threads": args.threads,
           "args": {k: ",".join(map(str, v)) if isinstance(v, list) else str(v)  # as typed: seeds "0,1"
                    for k, v in vars(args).items()},
           "rows": rows}
    if args.json:
        from eoreps.io import atomic_write_text

        atomic_write_text(args.json, json.dumps(out, indent=2, default=float) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    from eoreps.errors import EoRepsError

    try:
        main()
    except EoRepsError as e:  # bad input (a zoo that is not one, an output path that is a file): one line
        print(f"hyper_window_compare: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
