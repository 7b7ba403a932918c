"""Linear probe on frozen pretrained features vs the same backbones at random initialisation.

Loads every encoder of a pretraining run (``eoreps pretrain --out RUN``), extracts frozen features of
the SimEO (synthetic) ``train`` and ``test`` splits with the normalisation stored in each card, fits a
scikit-learn ``LogisticRegression`` on standardised features and reports test accuracy per encoder and
for late fusion (concatenated features), next to randomly initialised backbones of the same
architecture (seeds ``0 .. --random-seeds - 1``, mean and std). Usage::

    python benchmarks/ssl_linear_probe.py runs/multimodal --out benchmarks/results/ssl_linear_probe.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch


@torch.no_grad()
def features(encoders: dict[str, Any], data: Any, batch_size: int = 512) -> dict[str, np.ndarray]:
    """Frozen features per encoder ``{key: (N, D)}``, inputs normalised with each card's statistics."""
    from eoreps.ssl.export import input_normalizer, stack_inputs

    out: dict[str, list[np.ndarray]] = {k: [] for k in encoders}
    for k, enc in encoders.items():
        enc.eval()
        norm = input_normalizer(enc.card)
        for i in range(0, len(data), batch_size):
            batch = norm({m: data.images[m][i:i + batch_size] for m in enc.card["input"]["stack"]})
            out[k].append(enc(stack_inputs(batch, enc.card)).float().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def probe(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray) -> float:
    """Test accuracy of a logistic regression on standardised features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    clf.fit(train, y_train)
    return float((clf.predict(test) == y_test).mean())


def evaluate(encoders: dict[str, Any], train: Any, test: Any) -> dict[str, float]:
    """Probe accuracy per encoder and, with several encoders, for their concatenation (late fusion)."""
    ftr, fte = features(encoders, train), features(encoders, test)
    ytr, yte = train.labels.numpy(), test.labels.numpy()
    acc = {k: probe(ftr[k], ytr, fte[k], yte) for k in encoders}
    if len(encoders) > 1:
        acc["late_fusion"] = probe(
            np.concatenate(list(ftr.values()), 1), ytr, np.concatenate(list(fte.values()), 1), yte
        )
    return acc


def random_like(encoders: dict[str, Any], seed: int) -> dict[str, Any]:
    """Same architectures and cards, random initial weights."""
    from eoreps.models import create_backbone

    out = {}
    for k, enc in encoders.items():
        spec = dict(enc.card["backbone"])
        torch.manual_seed(seed)
        bb = create_backbone(spec.pop("name"), in_chans=spec.pop("in_chans"), **spec)
        bb.card = enc.card
        out[k] = bb
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="folder written by `eoreps pretrain --out`")
    p.add_argument("--data", default=None, help="dataset (default: the one in the card)")
    p.add_argument("--random-seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="JSON file for the results")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from eoreps.ssl.data import load_patches
    from eoreps.ssl.export import load_encoders

    encoders = load_encoders(args.run)
    card = next(iter(encoders.values())).card
    mods = list(card.get("pretrain_modalities") or card["modalities"])
    data = args.data or card["data"]["data"]
    train, test = load_patches(data, mods, "train"), load_patches(data, mods, "test")
    pre = evaluate(encoders, train, test)
    rnd_runs = [evaluate(random_like(encoders, s), train, test) for s in range(args.random_seeds)]
    rnd = {
        k: (statistics.mean(r[k] for r in rnd_runs), statistics.pstdev(r[k] for r in rnd_runs)) for k in pre
    }
    print(f"Linear probe (LogisticRegression on frozen features), {data} (synthetic) train {len(train)} / "
          f"test {len(test)}, method {card['method']}, backbone {card['backbone']['name']}")
    print(f"{'features':<12} {'pretrained':>10} {'random init':>16} {'margin':>8}")
    for k in pre:
        print(f"{k:<12} {pre[k]:10.3f} {rnd[k][0]:9.3f} ± {rnd[k][1]:.3f} {pre[k] - rnd[k][0]:+8.3f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(
            json.dumps(
                {
                    "run": args.run,
                    "data": data,
                    "train": len(train),
                    "test": len(test),
                    "pretrained": pre,
                    "random": {k: list(v) for k, v in rnd.items()},
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
