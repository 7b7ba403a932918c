"""``eoreps hyper evaluate``: predict model properties from W, s(W) and the learned embedding.

Every checkpoint of a zoo is a sample; the split is by model (the representation's own split when the
zoo is the one it was trained on, so no test model was seen by the encoder; a fresh split of the same
seed for another zoo, the out-of-distribution case). Continuous properties get ridge regression
(R^2 on test models), categorical ones logistic regression (accuracy), with regularisation chosen on
validation models. Learning rate and weight decay are regressed in log10.

Model selection: for each model, predict its final test accuracy from its checkpoint at an early
epoch (ridge trained on training models), and report the Spearman rank correlation of prediction and
truth over test models, next to the rank correlation of the early checkpoint's own test accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from eoreps.errors import DataError
from eoreps.hyper.features import weight_statistics
from eoreps.hyper.linear import logistic_probe, ridge_probe
from eoreps.hyper.representation import Representation, load_representation
from eoreps.hyper.splits import split_models
from eoreps.io import atomic_write_text, write_json
from eoreps.progress import progress

CONTINUOUS = ("test_acc", "epoch", "ggap", "lr", "weight_decay", "dropout", "train_fraction")
CATEGORICAL = ("activation", "init", "optimizer")
LOG_TARGETS = ("lr", "weight_decay")
COLUMNS = ("W", "s(W)", "learned", "z")
ROW_LABELS = {
    "test_acc": "test accuracy",
    "epoch": "epoch",
    "ggap": "generalization gap",
    "lr": "learning rate",
    "weight_decay": "weight decay",
    "dropout": "dropout",
    "train_fraction": "data fraction",
    "activation": "activation",
    "init": "initialization",
    "optimizer": "optimizer",
}


@dataclass
class ProbeData:
    """Features per column and properties of the checkpoints of one zoo, with their split."""

    features: dict[str, np.ndarray]
    props: pd.DataFrame


def build_features(zoo_dir: Path, rep: Representation, seed: int = 0, val_fraction: float = 0.15,
                   test_fraction: float = 0.15) -> tuple[ProbeData, bool]:
    """Features (W, s(W), learned, z) of every checkpoint of ``zoo_dir``; returns (data, in_distribution)."""
    from eoreps.zoo.modelzoo import ModelZoo

    zoo = ModelZoo(zoo_dir)
    rep.check_compatible(zoo.param_order, str(zoo_dir))
    props = zoo.properties.copy()
    own = rep.splits()
    ids = set(props["model_id"].astype(int))
    same_zoo = bool(own) and ids == set(own) and _same_path(rep, zoo_dir)
    if same_zoo:
        assignment = own
    else:
        cfg = rep.meta.get("config", {})
        assignment = split_models(sorted(ids), cfg.get("val_fraction", val_fraction),
                                  cfg.get("test_fraction", test_fraction), seed)
    props["split"] = props["model_id"].astype(int).map(assignment).to_numpy()
    W = zoo.weights_matrix()
    z, blocks = rep.embed_blocks(W)
    feats = {"W": W.numpy(), "s(W)": weight_statistics(W, zoo.param_order).numpy(),
             "learned": blocks.numpy(), "z": z.numpy()}
    return ProbeData(feats, props.reset_index(drop=True)), same_zoo


def _same_path(rep: Representation, zoo_dir: Path) -> bool:
    trained_on = rep.meta.get("zoo_path")
    return bool(trained_on) and Path(trained_on) == Path(zoo_dir).resolve()


def _subsample(idx: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    if n is None or len(idx) <= n:
        return idx
    return np.sort(np.random.default_rng([seed, 77]).choice(idx, size=n, replace=False))


def _target(props: pd.DataFrame, name: str) -> np.ndarray | None:
    if name not in props.columns:
        return None
    y = props[name].to_numpy(dtype=np.float64)
    return np.log10(np.clip(y, 1e-30, None)) if name in LOG_TARGETS else y


def kendall_tau(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Kendall's tau (scipy, tau-b) of predicted vs true values, NaN when the truth does not vary: the rank
    agreement that matters when a prediction is used to pick models (``hyper evaluate``'s second table)."""
    from scipy.stats import kendalltau

    if np.unique(np.asarray(y_true)).size < 2:
        return float("nan")
    return float(kendalltau(y_true, y_pred).statistic)


def property_table(data: ProbeData, max_train_rows: int | None = 6000, seed: int = 0) -> pd.DataFrame:
    """Rows: properties; columns: metric, W, s(W), learned, z (R^2 or accuracy on test models; NaN when the
    property does not vary in the zoo)."""
    return property_tables(data, max_train_rows, seed)[0]


def property_tables(data: ProbeData, max_train_rows: int | None = 6000, seed: int = 0
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`property_table` and, from the same ridge probes, Kendall's tau (scipy, tau-b) of predicted vs
    true value over the test checkpoints for each continuous property (rows; same columns, metric
    ``Kendall tau``, :func:`kendall_tau`): the rank agreement that matters when the prediction is used to
    pick models."""
    p = data.props
    sp = p["split"].to_numpy()
    tr = _subsample(np.flatnonzero(sp == "train"), max_train_rows, seed)
    va, te = np.flatnonzero(sp == "val"), np.flatnonzero(sp == "test")
    if len(tr) == 0 or len(va) == 0 or len(te) == 0:
        raise DataError("the zoo split has an empty train, val or test part; build a zoo with more models")
    rows: dict[str, dict[str, Any]] = {}
    taus: dict[str, dict[str, Any]] = {}
    cont = [c for c in CONTINUOUS if c in p.columns]
    for col in progress(COLUMNS, desc="property probes", unit="feature set"):
        x = data.features[col]
        ys = np.stack([_target(p, c) for c in cont], axis=1)
        res = ridge_probe(x[tr], ys[tr], x[va], ys[va], x[te], ys[te])
        for c, r in zip(cont, res, strict=True):
            const = np.unique(ys[:, cont.index(c)]).size < 2
            rows.setdefault(c, {"property": ROW_LABELS[c], "metric": "R2"})[col] = (
                float("nan") if const else r.r2
            )
            taus.setdefault(c, {"property": ROW_LABELS[c], "metric": "Kendall tau"})[col] = (
                float("nan") if const else kendall_tau(ys[te, cont.index(c)], r.pred_test)
            )
        for c in CATEGORICAL:
            if c not in p.columns:
                continue
            y = p[c].astype(str).to_numpy()
            acc = (
                float("nan")
                if np.unique(y).size < 2
                else logistic_probe(x[tr], y[tr], x[va], y[va], x[te], y[te])[0]
            )
            rows.setdefault(c, {"property": ROW_LABELS[c], "metric": "accuracy"})[col] = acc
    order = [c for c in (*CONTINUOUS, *CATEGORICAL) if c in rows]
    cols = ["property", "metric", *COLUMNS]
    return pd.DataFrame([rows[c] for c in order])[cols], pd.DataFrame([taus[c] for c in cont], columns=cols)


def model_selection_table(data: ProbeData, early_epoch: int | None = None) -> pd.DataFrame:
    """Spearman rho over test models between the predicted (from the checkpoint at ``early_epoch``) and
    the true final test accuracy; baseline: the early checkpoint's own test accuracy."""
    from scipy.stats import spearmanr

    p = data.props
    final_epoch = int(p["epoch"].max())
    if early_epoch is None:
        early_epoch = 1 if final_epoch >= 2 else 0
    if not 0 <= early_epoch < final_epoch:
        raise DataError(f"early_epoch={early_epoch} must lie in [0, {final_epoch}) for this zoo")
    early = p[p["epoch"] == early_epoch].sort_values("model_id")
    final = p[p["epoch"] == final_epoch].set_index("model_id").loc[early["model_id"]]
    y = final["test_acc"].to_numpy(dtype=np.float64)
    sp = early["split"].to_numpy()
    tr, va, te = (np.flatnonzero(sp == s) for s in ("train", "val", "test"))
    rows = [{"predictor": f"test accuracy at epoch {early_epoch}",
             "spearman": float(spearmanr(early["test_acc"].to_numpy()[te], y[te]).statistic)}]
    for col in COLUMNS:
        x = data.features[col][early.index.to_numpy()]
        r = ridge_probe(x[tr], y[tr], x[va], y[va], x[te], y[te])[0]
        rows.append({"predictor": f"{col} at epoch {early_epoch}",
                     "spearman": float(spearmanr(r.pred_test, y[te]).statistic)})
    df = pd.DataFrame(rows)
    df.attrs.update(early_epoch=early_epoch, final_epoch=final_epoch, n_test_models=int(len(te)))
    return df


def to_markdown(df: pd.DataFrame, digits: int = 3) -> str:
    """A DataFrame as a GitHub markdown table (NaN shown as 'n/a'; :func:`eoreps.report.markdown_table`)."""
    from eoreps.report.tables import markdown_table

    return markdown_table(df, floatfmt=f".{digits}f")


RANK_NOTE = ("Kendall's tau of predicted vs true value over the test checkpoints (same probes; the rank "
             "agreement that matters when the predictions pick models):\n\n")

MAP_KEYS = ("test_acc", "epoch", "lr", "weight_decay", "dropout", "train_fraction", "activation", "init",
            "optimizer")


def model_map(data: ProbeData, path: Path, seed: int = 0) -> Path:
    """2-D map of the models' learned embeddings ``z`` (every checkpoint), one panel per property that varies
    in the zoo: test accuracy, epoch and the hyperparameters (:func:`eoreps.report.maps.map_figure`)."""
    from eoreps.report.maps import map_figure

    p = data.props
    colours = {ROW_LABELS[c]: p[c].to_numpy() for c in MAP_KEYS if c in p.columns and p[c].nunique() > 1}
    return map_figure(
        data.features["z"], colours, path, "Hyper-representation: embeddings of the zoo's models", seed=seed
    )


def evaluate(
    zoo_dir: str | Path,
    rep_dir: str | Path,
    out: str | Path | None = None,
    early_epoch: int | None = None,
    max_train_rows: int | None = 6000,
    seed: int = 0,
    smoke: bool = False,
    plot: bool = False,
) -> dict[str, Any]:
    """Property table and model-selection table; written as markdown + CSV under ``out``
    (default ``REP/evaluate-<zoo name>``). Returns the tables and the paths. ``smoke`` (a ``--quick`` run)
    marks every table and ``summary.json`` as a smoke run (:mod:`eoreps.smoke`). ``plot`` also draws
    ``model_map.png`` (:func:`model_map`; its path is returned as ``"map"``)."""
    from eoreps.smoke import smoke_fields, smoke_markdown

    rep = load_representation(rep_dir)
    zoo_dir = Path(zoo_dir)
    torch.set_grad_enabled(False)
    try:
        data, in_dist = build_features(zoo_dir, rep, seed)
    finally:
        torch.set_grad_enabled(True)
    table, ranks = property_tables(data, max_train_rows, seed)
    sel = model_selection_table(data, early_epoch)
    out = Path(out) if out is not None else Path(rep_dir) / f"evaluate-{zoo_dir.resolve().name}"
    out.mkdir(parents=True, exist_ok=True)
    n_models = data.props.groupby("split")["model_id"].nunique().to_dict()
    kind = "in distribution" if in_dist else "out of distribution (encoder not trained on this zoo)"
    smoke_detail = f"{n_models.get('test', 0)} test models"
    smoke_line = smoke_markdown(smoke_detail) if smoke else ""
    header = smoke_line + (
        f"Zoo `{zoo_dir}` ({kind}); test models: {n_models.get('test', 0)}, validation: "
        f"{n_models.get('val', 0)}, training: {n_models.get('train', 0)}; checkpoints: {len(data.props)}. "
        "Columns: raw weights (W), weight statistics (s(W)), the compression token after every encoder "
        "block (learned) and its latent alone (z).\n\n"
    )
    atomic_write_text(out / "properties.md",
                      header + to_markdown(table) + "\n\n" + RANK_NOTE + to_markdown(ranks))
    atomic_write_text(out / "properties.csv", table.to_csv(index=False))
    atomic_write_text(out / "kendall.csv", ranks.to_csv(index=False))
    sel_note = smoke_line + (f"Rank correlation (Spearman) of predicted vs true final test accuracy (epoch "
                f"{sel.attrs['final_epoch']}) over {sel.attrs['n_test_models']} test models.\n\n")
    atomic_write_text(out / "model_selection.md", sel_note + to_markdown(sel))
    atomic_write_text(out / "model_selection.csv", sel.to_csv(index=False))
    write_json(
        out / "summary.json",
        {
            "zoo": str(zoo_dir),
            "representation": str(rep_dir),
            "in_distribution": in_dist,
            "models": n_models,
            "checkpoints": len(data.props),
            "properties": table.to_dict(orient="records"),
            "kendall_tau": ranks.to_dict(orient="records"),
            "model_selection": sel.to_dict(orient="records"),
            "early_epoch": sel.attrs["early_epoch"],
            **smoke_fields(smoke, smoke_detail),
        },
    )
    return {
        "properties": table,
        "kendall_tau": ranks,
        "model_selection": sel,
        "out": out,
        "in_distribution": in_dist,
        "header": header,
        "sel_note": sel_note,
        "smoke": smoke_line,
        "map": model_map(data, out / "model_map.png", seed) if plot else None,
    }
