"""Sparsified twins: magnitude pruning of every zoo member at given sparsity ratios.

For each member (at the chosen epochs) and each sparsity ratio s, the fraction s of its *weights*
(biases are kept) with the smallest magnitude, ranked over all layers at once (global unstructured
magnitude pruning), is set to zero. The twin's test accuracy is measured in float32 with the
vectorized forward. Results:

* ``DIR/sparsified.parquet`` (+ ``.csv``): model_id, epoch, sparsity, achieved sparsity, test loss,
  test accuracy, and the member's factors;
* ``DIR/twins/shards/c<k>-e<epoch>.safetensors``: the pruned weights (k = index of the sparsity ratio
  in ``DIR/twins/zoo.json``), same format as the zoo's shards, checksummed;
* ``DIR/sparsified.png``: test accuracy against sparsity (median and 10-90% band per activation).

Why hand-written rather than ``torch.nn.utils.prune``: that utility prunes one module at a time via
hooks; here thousands of members are pruned at once as rows of one (M, D) matrix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from eoreps.errors import ConfigError
from eoreps.io import atomic_path
from eoreps.progress import progress
from eoreps.zoo.architectures import Arch
from eoreps.zoo.datasets import ZooData
from eoreps.zoo.modelzoo import ModelZoo
from eoreps.zoo.population import eval_population, stack_params
from eoreps.zoo.store import ZooStore


def weight_mask(arch: Arch) -> torch.Tensor:
    """(D,) bool: True at entries that are weights (prunable), False at biases."""
    parts = []
    for key, shape in arch.param_shapes():
        n = int(np.prod(shape))
        parts.append(torch.full((n,), not key.endswith(".bias")))
    return torch.cat(parts)


def magnitude_prune(weights: torch.Tensor, prunable: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Zero the ``sparsity`` fraction of smallest-magnitude prunable entries of each row.

    ``weights``: (M, D); ``prunable``: (D,) bool. Returns a new (M, D) tensor. Ties at the threshold are
    broken by position (exactly ``round(sparsity * n_prunable)`` entries are zeroed per row).
    """
    if not 0.0 <= sparsity <= 1.0:
        raise ConfigError(f"sparsity {sparsity} outside [0, 1]")
    out = weights.clone()
    cols = prunable.nonzero().squeeze(1)
    k = int(round(sparsity * len(cols)))
    if k == 0:
        return out
    mags = weights[:, cols].abs()
    drop = torch.topk(mags, k, dim=1, largest=False).indices  # (M, k)
    sub = out[:, cols]
    sub.scatter_(1, drop, 0.0)
    out[:, cols] = sub
    return out


def sparsify_zoo(
    root: str | Path,
    sparsities: list[float],
    epochs: list[int] | None = None,
    data: ZooData | None = None,
    batch: int = 256,
    out: str | Path | None = None,
) -> pd.DataFrame:
    """Prune every member of the zoo at ``root`` (at ``epochs``, default: the last) and evaluate.

    Results (table, figure, ``twins/``) go to ``out`` (default: the zoo folder).
    """
    zoo_dir = Path(root)
    out_dir = Path(out) if out is not None else zoo_dir
    zoo = ModelZoo(zoo_dir)
    m = zoo.manifest
    if zoo.is_backbone_zoo:
        raise ConfigError(f"{zoo_dir}: a zoo of backbones ({m['architecture']}); sparsified twins are made "
                          f"of zoos of layer-list architectures (arch=cnn_s, ...)")
    if epochs is None:
        epochs = [int(m["epochs"])]
    zoo = ModelZoo(zoo_dir, epochs=epochs)
    if len(zoo) == 0:
        raise ConfigError(
            f"{zoo_dir}: no checkpoints at epochs {epochs}; the zoo has epochs 0..{m['epochs']}"
        )
    data = data if data is not None else zoo.dataset()
    arch = zoo.arch
    W = zoo.weights_matrix()
    props = zoo.properties
    prunable = weight_mask(arch)
    twins = ZooStore(out_dir / "twins")
    twins.write_manifest(
        {**{k: v for k, v in m.items() if k != "format_version"}, "sparsities": list(sparsities)}
    )
    rows = []
    names = []
    for si, s in enumerate(progress(sparsities, desc="sparsity", unit="ratio")):
        Wp = magnitude_prune(W, prunable, float(s))
        achieved = ((Wp[:, prunable] == 0).float().mean(1)).numpy()
        loss = np.zeros(len(zoo))
        acc = np.zeros(len(zoo))
        for act, grp in props.groupby("activation"):
            idx = grp.index.to_numpy()
            for o in range(0, len(idx), batch):
                sel = torch.as_tensor(idx[o:o + batch].copy())  # pandas may hand out a read-only view
                lo, ac = eval_population(
                    arch, stack_params(arch, Wp[sel]), str(act), data.x_test, data.y_test
                )
                loss[idx[o:o + batch]], acc[idx[o:o + batch]] = lo, ac
        for e in epochs:
            sel = (props["epoch"] == e).to_numpy().copy()  # writable: torch warns on a read-only view
            recs = []
            for i in np.flatnonzero(sel):
                r = props.iloc[i]
                rec = {k: r[k] for k in ("model_id", "epoch", "seed", "activation", "init", "optimizer", "lr",
                                         "weight_decay", "dropout", "train_fraction")}
                rec = {k: (v.item() if hasattr(v, "item") else v) for k, v in rec.items()}
                rec.update(sparsity=float(s), achieved_sparsity=float(achieved[i]), test_loss=float(loss[i]),
                           test_acc=float(acc[i]), dense_test_acc=float(r["test_acc"]))
                recs.append(rec)
            names.append(twins.write_shard(si, int(e), [int(v) for v in props["model_id"].to_numpy()[sel]],
                              Wp[torch.as_tensor(sel)], recs))
            rows += recs
    twins.write_index(0, 0, names)
    df = pd.DataFrame(rows)
    with atomic_path(out_dir / "sparsified.parquet") as tmp:
        df.to_parquet(tmp, index=False)
    with atomic_path(out_dir / "sparsified.csv") as tmp:
        df.to_csv(tmp, index=False)
    plot_sparsity(df, out_dir / "sparsified.png")
    return df


def plot_sparsity(df: pd.DataFrame, path: Path) -> None:
    """Test accuracy against sparsity: median and 10-90% band per activation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for act, g in df.groupby("activation"):
        st = g.groupby("sparsity")["test_acc"]
        x = np.array(sorted(g["sparsity"].unique()))
        ax.plot(x, st.median().reindex(x), marker="o", label=str(act))
        ax.fill_between(x, st.quantile(0.1).reindex(x), st.quantile(0.9).reindex(x), alpha=0.2)
    ax.set_xlabel("sparsity (fraction of weights pruned)")
    ax.set_ylabel("test accuracy")
    ax.set_title("sparsified twins (magnitude pruning)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
