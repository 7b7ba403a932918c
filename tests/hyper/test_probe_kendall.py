"""Kendall's tau beside R^2 in ``hyper evaluate``'s property probes (issue 23)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from eoreps.hyper.linear import ridge_probe
from eoreps.hyper.probes import COLUMNS, ProbeData, property_table, property_tables


def _data(seed: int = 0) -> ProbeData:
    """60 models x 3 epochs; 'learned' holds test accuracy and epoch exactly, the others noise."""
    rng = np.random.default_rng(seed)
    n_models, n_epochs = 60, 3
    mid = np.repeat(np.arange(n_models), n_epochs)
    epoch = np.tile(np.arange(n_epochs), n_models).astype(float)
    acc = rng.uniform(0.1, 0.9, len(mid))
    split = np.where(mid < 40, "train", np.where(mid < 50, "val", "test"))
    props = pd.DataFrame({"model_id": mid, "epoch": epoch, "test_acc": acc, "split": split})
    noise = rng.normal(size=(len(mid), 4))
    feats = {"W": noise, "s(W)": np.c_[acc + rng.normal(0, 0.2, len(mid)), noise[:, :2]],
             "learned": np.c_[acc, epoch], "z": noise[:, ::-1].copy()}
    return ProbeData(feats, props)


def test_kendall_tau_is_reported_from_the_same_probes_as_r2():
    data = _data()
    table, ranks = property_tables(data, max_train_rows=None)
    assert list(ranks["property"]) == ["test accuracy", "epoch"]
    assert list(ranks.columns) == ["property", "metric", *COLUMNS] and set(ranks["metric"]) == {"Kendall tau"}
    pd.testing.assert_frame_equal(table, property_table(data, max_train_rows=None))
    tau = ranks.set_index("property")
    assert tau.loc["test accuracy", "learned"] > 0.99  # exact features: same order as the truth
    assert abs(tau.loc["test accuracy", "W"]) < 0.3  # noise
    # s(W) column: what scipy gives for the ridge predictions on the test checkpoints
    p, x = data.props, data.features["s(W)"]
    tr, va, te = (np.flatnonzero(p["split"] == s) for s in ("train", "val", "test"))
    y = p["test_acc"].to_numpy()
    pred = ridge_probe(x[tr], y[tr], x[va], y[va], x[te], y[te])[0].pred_test
    assert tau.loc["test accuracy", "s(W)"] == np.float64(kendalltau(y[te], pred).statistic)
    assert 0.3 < tau.loc["test accuracy", "s(W)"] < 0.99


def test_kendall_tau_is_nan_for_a_property_constant_in_the_zoo():
    data = _data(1)
    data.props["epoch"] = 0.0
    _, ranks = property_tables(data, max_train_rows=None)
    assert ranks.set_index("property").loc["epoch", list(COLUMNS)].isna().all()
