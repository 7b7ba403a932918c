"""Predictive uncertainty: MC dropout, an uncertainty filter and a calibration curve.

* :func:`mc_dropout_predict` runs ``T`` stochastic passes with only the dropout layers in training mode
  (batch norm stays in eval mode; Gal & Ghahramani 2016) and splits the predictive variance of a
  regression task into **epistemic** (variance of the ``T`` means) and **aleatoric** (mean of the ``T``
  predicted variances of a heteroscedastic head; 0 for a plain MSE head).
* :class:`UncertaintyFilter` drops the ``q`` % most uncertain predictions. Its threshold is the
  ``(100 - q)`` % quantile of the uncertainty on a reference set (the validation split) when fitted, so on
  shifted data it drops more than ``q`` %, as in Scheibenreif et al. (2022); unfitted, it uses
  the data's own quantile.
* :func:`calibration_table` bins predictions by predicted standard deviation (equal-count bins) and
  reports the observed RMSE per bin; :func:`calibration_figure` plots it against the ideal diagonal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from eoreps.errors import ConfigError
from eoreps.tasks.spec import TaskSpec


@contextlib.contextmanager
def mc_dropout(model: nn.Module) -> Iterator[nn.Module]:
    """Model in eval mode except its dropout layers (restores the previous modes on exit)."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.train()
    try:
        yield model
    finally:
        for m, mode in modes.items():
            m.train(mode)


def _regression_pass(
    model: nn.Module, batch: dict[str, Any], task: TaskSpec
) -> tuple[torch.Tensor, torch.Tensor]:
    out = model(batch)[task.name]
    mean = task.to_units(out)
    if task.heteroscedastic:
        var = torch.exp(out[1].float()) * task.target_std**2
    else:
        var = torch.zeros_like(mean)
    return mean, var


@torch.no_grad()
def mc_dropout_predict(model: nn.Module, batch: dict[str, Any], task: TaskSpec, passes: int = 20,
                       active: bool = True) -> dict[str, torch.Tensor]:
    """Predictive mean and variances of regression ``task`` from ``passes`` stochastic passes.

    Args:
        model: maps a batch dict to ``{task name: output}`` (:class:`~eoreps.tasks.multitask.MultiHeadModel`
            or :class:`~eoreps.tasks.supervised.SupervisedModule`).
        batch: a normalised batch.
        task: a regression task of ``model``.
        passes: ``T``.
        active: keep dropout active (``False``: ``T`` deterministic eval passes, zero epistemic variance).

    Returns:
        ``mean``, ``epistemic``, ``aleatoric``, ``total`` (= epistemic + aleatoric), ``std`` (= sqrt(total)),
        each ``(B,)`` in the target's units (variances in squared units).
    """
    if task.kind != "regress":
        raise ConfigError(f"MC dropout prediction is implemented for regression tasks, not '{task.kind}'")
    if passes < 1:
        raise ConfigError(f"passes={passes}: need at least one pass")
    ctx = mc_dropout(model) if active else _eval_mode(model)
    with ctx:
        means, variances = zip(*(_regression_pass(model, batch, task) for _ in range(passes)), strict=True)
    m = torch.stack(means)
    v = torch.stack(variances)
    epistemic = m.var(dim=0, unbiased=False)
    aleatoric = v.mean(dim=0)
    total = epistemic + aleatoric
    return {
        "mean": m.mean(0),
        "epistemic": epistemic,
        "aleatoric": aleatoric,
        "total": total,
        "std": total.sqrt(),
    }


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


@torch.no_grad()
def predict_regression(model: nn.Module, batches: Iterable[dict[str, Any]], task: TaskSpec, passes: int = 0
                       ) -> dict[str, np.ndarray]:
    """Predictions over ``batches``: ``passes == 0`` a plain eval pass, else MC dropout with ``passes``.

    Returns numpy arrays ``y`` (targets), ``mean``, ``std`` (predictive std; for a plain pass the
    heteroscedastic head's std or 0), ``epistemic`` and ``aleatoric`` variances.
    """
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("y", "mean", "std", "epistemic", "aleatoric")}
    for batch in batches:
        res = mc_dropout_predict(model, batch, task, passes=max(passes, 1), active=passes > 0)
        cols["y"].append(batch[task.target].float().cpu().numpy())
        for k in ("mean", "std", "epistemic", "aleatoric"):
            cols[k].append(res[k].float().cpu().numpy())
    return {k: np.concatenate(v) if v else np.zeros(0, np.float32) for k, v in cols.items()}


class UncertaintyFilter:
    """Keep predictions whose uncertainty is below the ``(100 - q)`` % quantile of a reference set."""

    def __init__(self, q: float = 5.0) -> None:
        if not 0 <= q < 100:
            raise ConfigError(f"filter q={q}: the percentage of predictions to drop must be in [0, 100)")
        self.q = q
        self.threshold: float | None = None

    def fit(self, reference_uncertainty: np.ndarray) -> UncertaintyFilter:
        """Set the threshold from a reference set's uncertainties (e.g. the validation split)."""
        self.threshold = float(np.quantile(np.asarray(reference_uncertainty), 1 - self.q / 100.0))
        return self

    def keep(self, uncertainty: np.ndarray) -> np.ndarray:
        """Boolean mask of predictions to keep."""
        u = np.asarray(uncertainty)
        thr = self.threshold if self.threshold is not None else float(np.quantile(u, 1 - self.q / 100.0))
        return u <= thr


def regression_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """``n``, ``r2``, ``mae``, ``mse`` of predictions (numpy; used on filtered subsets)."""
    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    if y.size == 0:
        return {"n": 0, "r2": float("nan"), "mae": float("nan"), "mse": float("nan")}
    mse = float(np.mean((y - pred) ** 2))
    var = float(np.var(y))
    return {"n": int(y.size), "r2": 1.0 - mse / var if var > 0 else float("nan"),
            "mae": float(np.mean(np.abs(y - pred))), "mse": mse}


def calibration_table(
    y: np.ndarray, pred: np.ndarray, std: np.ndarray, bins: int = 10
) -> dict[str, np.ndarray]:
    """Equal-count bins of predicted std: ``predicted_std`` (RMS of std in the bin),
    ``observed_rmse``, ``count``."""
    y, pred, std = (np.asarray(a, np.float64) for a in (y, pred, std))
    order = np.argsort(std, kind="stable")
    groups = [g for g in np.array_split(order, min(bins, max(1, y.size))) if g.size]
    return {
        "predicted_std": np.array([np.sqrt(np.mean(std[g] ** 2)) for g in groups]),
        "observed_rmse": np.array([np.sqrt(np.mean((y[g] - pred[g]) ** 2)) for g in groups]),
        "count": np.array([g.size for g in groups]),
    }


def calibration_figure(tables: dict[str, dict[str, np.ndarray]], title: str) -> Any:
    """Observed RMSE against predicted std per bin, one line per named table, with the ideal diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4))
    hi = 0.0
    for name, t in tables.items():
        ax.plot(t["predicted_std"], t["observed_rmse"], "o-", label=name)
        hi = max(
            hi, float(np.max(t["predicted_std"], initial=0)), float(np.max(t["observed_rmse"], initial=0))
        )
    ax.plot([0, hi], [0, hi], "k--", lw=1, label="ideal")
    ax.set_xlabel("predicted uncertainty (std)")
    ax.set_ylabel("observed error (RMSE)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
