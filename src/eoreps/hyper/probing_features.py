"""The probing baseline: describe a model by what it outputs on a fixed batch of inputs.

Predicting a model's properties (test accuracy, downstream probe accuracy) from its weights is compared
against two baselines: ``s(W)`` (:func:`eoreps.hyper.features.weight_statistics`, statistics of the weights)
and this one, which runs every model on the same fixed inputs (seeded Gaussian noise, or real images
given by the caller) and summarises its outputs (logits of a zoo member with a head; pooled features of
a backbone). Features of a model with K outputs on B inputs, (2K + 5,):

* per output unit, the mean and the standard deviation over the batch (2K);
* over all B x K outputs, the 1/25/50/75/99 percentiles (5).

Every model of a zoo has the same K (a zoo holds one architecture), so the features stack into
(N, 2K + 5). Deterministic: the same models and inputs give the same features (models run in eval mode,
without gradients).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from eoreps.errors import DataError

QUANTILES = (0.01, 0.25, 0.5, 0.75, 0.99)


def probe_inputs(in_shape: Sequence[int], n: int = 64, seed: int = 0) -> torch.Tensor:
    """A fixed batch of ``n`` inputs of ``in_shape`` (C, H, W): standard Gaussian noise seeded by ``seed``
    (zoo inputs are normalised per channel, so N(0, 1) has the data's scale)."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn(int(n), *(int(v) for v in in_shape), generator=g)


@torch.no_grad()
def output_features(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """(2K + 5,) features of one model's outputs on ``inputs`` (see the module docstring)."""
    out = model.eval()(inputs).double()
    if out.ndim != 2:
        out = out.reshape(len(out), -1)
    q = torch.quantile(out.reshape(-1), torch.tensor(QUANTILES, dtype=torch.float64))
    return torch.cat([out.mean(0), out.std(0, unbiased=False), q]).float()


def probing_features(models: Iterable[nn.Module], inputs: torch.Tensor) -> torch.Tensor:
    """(N, 2K + 5) features of ``models`` on the same ``inputs``; models with different output sizes are a
    one-line :class:`DataError`."""
    rows = [output_features(m, inputs) for m in models]
    sizes = sorted({len(r) for r in rows})
    if len(sizes) > 1:
        raise DataError(
            f"probing features: models give outputs of different sizes {sizes}; probe models of "
            f"one architecture"
        )
    return torch.stack(rows) if rows else torch.empty(0, 0)


def zoo_probing_features(
    zoo: Any, n_inputs: int = 64, seed: int = 0, inputs: torch.Tensor | None = None
) -> torch.Tensor:
    """(len(zoo), 2K + 5) probing features of every item of a :class:`eoreps.zoo.ModelZoo` (its
    ``build_model``), on ``inputs`` or on :func:`probe_inputs` of the zoo's input shape."""
    x = inputs if inputs is not None else probe_inputs(zoo.manifest["in_shape"], n_inputs, seed)
    return probing_features((zoo.build_model(i) for i in range(len(zoo))), x)


def probing_feature_names(num_outputs: int) -> list[str]:
    """Column names of :func:`output_features` for K = ``num_outputs``."""
    return (
        [f"out{k}.mean" for k in range(num_outputs)]
        + [f"out{k}.std" for k in range(num_outputs)]
        + [f"all.p{round(q * 100):02d}" for q in QUANTILES]
    )


def baseline_scores(
    features: dict[str, np.ndarray],
    target: np.ndarray,
    model_ids: np.ndarray,
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.3,
) -> dict[str, dict]:
    """How well each feature set predicts ``target`` (one value per row): ridge regression
    (:func:`eoreps.hyper.linear.ridge_probe`, alpha chosen on validation) on a split by model
    (:func:`eoreps.hyper.splits.split_models`), scored on the test models by R^2 and Kendall's tau (the rank
    agreement that says which model transfers best).

    Returns ``{name: {"r2", "kendall_tau", "n_train", "n_test"}}``.
    """
    from eoreps.hyper.linear import ridge_probe
    from eoreps.hyper.probes import kendall_tau
    from eoreps.hyper.splits import split_models

    ids = np.asarray(model_ids)
    where = split_models(ids, val_fraction, test_fraction, seed)
    split = np.array([where[int(m)] for m in ids])
    y = np.asarray(target, dtype=np.float64)
    out: dict[str, dict] = {}
    for name, x in features.items():
        x = np.asarray(x, dtype=np.float64)
        tr, va, te = (split == s for s in ("train", "val", "test"))
        res = ridge_probe(x[tr], y[tr], x[va], y[va], x[te], y[te])[0]
        out[name] = {
            "r2": float(res.r2),
            "kendall_tau": kendall_tau(y[te], res.pred_test),
            "n_train": int(tr.sum()),
            "n_test": int(te.sum()),
        }
    return out


def zoo_baseline_scores(
    zoo: Any,
    target: str = "probe_acc_10",
    seed: int = 0,
    n_inputs: int = 64,
    folds: int = 0,
    repeats: int = 10,
    extra: dict[str, np.ndarray] | None = None,
    group_by: str | None = None,
) -> dict[str, dict]:
    """Scores of the two baselines, ``s(W)`` (:func:`eoreps.hyper.features.weight_statistics`) and
    ``probing`` (:func:`zoo_probing_features`), plus the feature sets in ``extra`` (e.g. a learned
    embedding, one row per zoo item), for column ``target`` of a :class:`eoreps.zoo.ModelZoo` (e.g. a zoo of
    pretrained backbones and its ``probe_acc_10``, or ``test_acc`` of a backbone zoo).

    ``folds=0``: :func:`baseline_scores` (one split by model). ``folds >= 2``: out-of-fold predictions of
    a ``repeats`` x ``folds``-fold split (:func:`eoreps.hyper.oof.oof_scores`), for zoos of a few dozen
    models where one split leaves too few test models; ``group_by`` (an index column, e.g. ``seed``):
    leave-one-group-out instead.
    """
    from eoreps.hyper.features import weight_statistics

    if target not in zoo.properties.columns:
        raise DataError(
            f"{zoo.store.root}: the zoo index has no column '{target}'; choose one of "
            f"{', '.join(map(str, zoo.properties.columns))}"
        )
    if group_by is not None and group_by not in zoo.properties.columns:
        raise DataError(f"{zoo.store.root}: the zoo index has no column '{group_by}' to group by")
    feats = {
        "s(W)": weight_statistics(zoo.weights_matrix(), zoo.param_order).numpy(),
        "probing": zoo_probing_features(zoo, n_inputs, seed).numpy(),
        **(extra or {}),
    }
    y = zoo.properties[target].to_numpy()
    if folds or group_by is not None:
        from eoreps.hyper.oof import oof_scores

        groups = None if group_by is None else zoo.properties[group_by].to_numpy()
        return oof_scores(feats, y, folds or 2, repeats, seed, groups=groups)
    return baseline_scores(feats, y, zoo.properties["model_id"].to_numpy(), seed)
