"""MC dropout, the uncertainty filter and calibration bins."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eoreps.errors import ConfigError
from eoreps.models.fusion import InputSpec, build_encoder
from eoreps.tasks.multitask import MultiHeadModel
from eoreps.tasks.spec import TaskSpec
from eoreps.tasks.uncertainty import (
    UncertaintyFilter,
    calibration_figure,
    calibration_table,
    mc_dropout,
    mc_dropout_predict,
    predict_regression,
    regression_scores,
)


def _model(dropout: float, heteroscedastic: bool = True):
    torch.manual_seed(0)
    task = TaskSpec("regress", heteroscedastic=heteroscedastic, target_mean=10.0, target_std=2.0)
    enc = build_encoder("late", [InputSpec("s2", 3)], "cnn-tiny", (16, 16))
    return MultiHeadModel(enc, [task], dropout=dropout), task


def _batch():
    g = torch.Generator().manual_seed(1)
    return {"s2": torch.randn(6, 3, 16, 16, generator=g), "target": 10 + 2 * torch.randn(6, generator=g)}


def test_mc_dropout_variance_only_with_dropout_active() -> None:
    model, task = _model(dropout=0.3)
    model.train()  # batch norm must still be in eval mode inside mc_dropout
    res = mc_dropout_predict(model, _batch(), task, passes=8)
    assert res["mean"].shape == (6,)
    assert torch.all(res["epistemic"] > 0)
    assert torch.all(res["aleatoric"] > 0)
    torch.testing.assert_close(res["total"], res["epistemic"] + res["aleatoric"])
    assert model.training  # modes restored
    off = mc_dropout_predict(model, _batch(), task, passes=8, active=False)
    assert torch.all(off["epistemic"] == 0)
    no_dropout, task0 = _model(dropout=0.0)
    assert torch.all(mc_dropout_predict(no_dropout, _batch(), task0, passes=5)["epistemic"] == 0)


def test_mc_dropout_keeps_batchnorm_in_eval() -> None:
    model, _ = _model(dropout=0.3)
    with mc_dropout(model):
        bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        drops = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
        assert bns and not any(m.training for m in bns)
        assert drops and all(m.training for m in drops)


def test_plain_regression_has_no_aleatoric_term_and_units() -> None:
    model, task = _model(dropout=0.0, heteroscedastic=False)
    out = predict_regression(model, [_batch(), _batch()], task, passes=0)
    assert out["mean"].shape == (12,) and np.all(out["aleatoric"] == 0)
    with torch.no_grad():
        model.eval()
        raw = model(_batch())["regress"]
    np.testing.assert_allclose(out["mean"][:6], (raw * 2 + 10).numpy(), rtol=1e-5)
    with pytest.raises(ConfigError):
        mc_dropout_predict(model, _batch(), TaskSpec("classify", num_classes=3), passes=2)


def test_filter_drops_q_percent_and_more_on_shifted_data() -> None:
    rng = np.random.default_rng(0)
    val = rng.exponential(1.0, 10000)
    f = UncertaintyFilter(q=5).fit(val)
    assert f.keep(val).mean() == pytest.approx(0.95, abs=0.002)
    shifted = rng.exponential(2.0, 10000)
    assert f.keep(shifted).mean() < 0.8
    assert UncertaintyFilter(q=10).keep(shifted).mean() == pytest.approx(0.9, abs=0.002)
    with pytest.raises(ConfigError):
        UncertaintyFilter(q=100)


def test_filtering_uncertain_predictions_lowers_error() -> None:
    rng = np.random.default_rng(0)
    std = rng.uniform(0.1, 3.0, 5000)
    y = rng.normal(0, 3, 5000)
    pred = y + std * rng.normal(size=5000)
    keep = UncertaintyFilter(q=20).keep(std)
    assert regression_scores(y[keep], pred[keep])["mse"] < regression_scores(y, pred)["mse"]


def test_calibration_of_a_calibrated_predictor() -> None:
    rng = np.random.default_rng(0)
    std = rng.uniform(0.5, 3.0, 20000)
    pred = rng.normal(0, 1, 20000)
    y = pred + std * rng.normal(size=20000)
    t = calibration_table(y, pred, std, bins=5)
    assert t["count"].sum() == 20000
    np.testing.assert_allclose(t["observed_rmse"], t["predicted_std"], rtol=0.05)
    assert np.all(np.diff(t["predicted_std"]) > 0)
    fig = calibration_figure({"test": t}, "SimEO (synthetic)")
    assert fig.axes[0].get_title() == "SimEO (synthetic)"
