"""``eoreps zoo inspect``: counts, property distributions and a figure of a zoo directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from eoreps.io import atomic_path
from eoreps.zoo.backbones import BACKBONE_FACTORS
from eoreps.zoo.grid import FACTORS
from eoreps.zoo.store import ZooStore


def inspect_zoo(root: str | Path, verify: bool = True, figure: bool = True,
                out: str | Path | None = None) -> dict[str, Any]:
    """Summary of the zoo at ``root`` (every shard's checksum verified when ``verify``).

    Returns a dict with ``counts``, ``factors`` (value -> number of members), ``metrics`` (quantiles of
    the last epoch's metrics) and ``figure`` (path of ``inspect.png``, written to ``out``, default
    ``root``; or None).
    """
    store = ZooStore(root)
    m = store.read_manifest()
    index = store.read_index()
    if verify:
        for name in sorted(index["shard"].unique()):
            store.check_shard(str(name))
    last = index[index["epoch"] == index["epoch"].max()]
    members = index.drop_duplicates("model_id")
    counts = {
        "models": int(index["model_id"].nunique()),
        "epochs": f"0..{int(index['epoch'].max())}",
        "checkpoints": len(index),
        "shards": int(index["shard"].nunique()),
        "architecture": f"{m['architecture']} ({m['num_params']} params)",
        "dataset": f"{m['dataset']['name']} ({'synthetic' if m['dataset']['synthetic'] else 'real'}"
        + (f", {m['dataset']['n_train']} train / {m['dataset']['n_val']} val / {m['dataset']['n_test']} test)"
           if "n_train" in m["dataset"] else ")"),
        **{k: m["options"][k] for k in ("precision", "data_order") if k in m.get("options", {})},
    }
    # layer-list zoos: FACTORS; backbone zoos and zoos of pretrained backbones: their own factors
    names = dict.fromkeys([*FACTORS, *BACKBONE_FACTORS, "method", "data_fraction"])
    factors = {
        f: {str(k): int(v) for k, v in members[f].value_counts().sort_index().items()}
        for f in names if f in members.columns
    }
    metrics = {}
    probes = [c for c in last.columns if str(c).startswith("probe_acc_")]
    for col in [c for c in ("train_acc", "val_acc", "test_acc", "test_loss", "ggap") if c in last] + probes:
        q = last[col].quantile([0.0, 0.1, 0.5, 0.9, 1.0]).to_numpy()
        metrics[col] = {
            "min": q[0],
            "p10": q[1],
            "median": q[2],
            "p90": q[3],
            "max": q[4],
            "mean": last[col].mean(),
        }
    figure = figure and "test_acc" in last  # a zoo of pretrained backbones has probe accuracies only
    fig_path = Path(out if out is not None else root) / "inspect.png" if figure else None
    if fig_path is not None:
        _figure(index, last, fig_path)
    return {
        "counts": counts,
        "factors": factors,
        "metrics": metrics,
        "figure": str(fig_path) if fig_path else None,
    }


def _figure(index: pd.DataFrame, last: pd.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = inspect_figure(index, last)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def inspect_figure(index: pd.DataFrame, last: pd.DataFrame) -> Any:
    """The three-panel ``inspect.png`` figure (a matplotlib ``Figure``): the last epoch's test accuracy,
    the median test accuracy per epoch by activation (integer epoch axis) and train vs test accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    final = int(last["epoch"].max())
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.9))
    ax[0].hist(last["test_acc"], bins=30, color="tab:blue")
    ax[0].set_title(f"Test accuracy after epoch {final}")
    ax[0].set_xlabel("test accuracy")
    ax[0].set_ylabel("models")
    by = "activation" if "activation" in index else "optimizer"  # backbone zoos have no activation factor
    for act, g in index.groupby(by):
        med = g.groupby("epoch")["test_acc"].median()
        ax[1].plot(med.index, med.to_numpy(), marker="o", ms=3, label=str(act))
    ax[1].set_title(f"Median test accuracy by {by}")
    ax[1].set_xlabel("epoch")
    ax[1].set_ylabel("median test accuracy")
    ax[1].xaxis.set_major_locator(MaxNLocator(integer=True))
    ax[1].legend(fontsize=8)
    ax[2].scatter(last["train_acc"], last["test_acc"], s=4, alpha=0.5)
    lim = [0, 1]
    ax[2].plot(lim, lim, color="gray", lw=0.8)
    ax[2].set_title(f"Train vs test accuracy (epoch {final})")
    ax[2].set_xlabel("train accuracy")
    ax[2].set_ylabel("test accuracy")
    fig.tight_layout()
    return fig


def format_report(rep: dict[str, Any]) -> str:
    """The inspection as plain text."""
    lines = ["zoo"]
    lines += [f"  {k:<13} {v}" for k, v in rep["counts"].items()]
    lines.append("generating factors (members per value)")
    for f, vals in rep["factors"].items():
        lines.append(f"  {f:<13} " + ", ".join(f"{k}: {v}" for k, v in vals.items()))
    lines.append("last epoch          min     p10  median     p90     max    mean")
    for col, q in rep["metrics"].items():
        lines.append(
            f"  {col:<13} " + " ".join(f"{q[k]:7.3f}" for k in ("min", "p10", "median", "p90", "max", "mean"))
        )
    if rep["figure"]:
        lines.append(f"figure: {rep['figure']}")
    return "\n".join(lines)
