"""Splits of a zoo by model: every checkpoint (epoch) of a model lies on the same side.

Splitting checkpoints at random would put epoch 11 of a model in training and epoch 12 in test, and
a probe could then "predict" test accuracy by recognising the model; splitting by ``model_id`` rules
this out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from eoreps.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")


def split_models(model_ids: list[int] | np.ndarray, val_fraction: float = 0.15, test_fraction: float = 0.15,
                 seed: int = 0) -> dict[int, str]:
    """Assign every distinct model id to ``train``, ``val`` or ``test`` (deterministic given ``seed``).

    Each split gets at least one model when there are three or more models.
    """
    ids = np.unique(np.asarray(model_ids, dtype=np.int64))
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ConfigError(
            f"split fractions val={val_fraction}, test={test_fraction} must be >= 0 and sum below 1"
        )
    if len(ids) < 3:
        raise ConfigError(
            f"the zoo has {len(ids)} model(s); splitting by model needs at least 3 (build a larger zoo)"
        )
    perm = np.random.default_rng([int(seed), 5150]).permutation(ids)
    n = len(ids)
    n_test = max(1, int(round(test_fraction * n))) if test_fraction > 0 else 0
    n_val = max(1, int(round(val_fraction * n))) if val_fraction > 0 else 0
    out = {int(m): "test" for m in perm[:n_test]}
    out.update({int(m): "val" for m in perm[n_test:n_test + n_val]})
    out.update({int(m): "train" for m in perm[n_test + n_val:]})
    return out


def split_column(index: pd.DataFrame, assignment: dict[int, str]) -> pd.Series:
    """The split of each row of a zoo index (by its ``model_id``)."""
    col = index["model_id"].astype(int).map(assignment)
    if col.isna().any():
        missing = sorted(set(index.loc[col.isna(), "model_id"].astype(int)))[:5]
        raise DataError(
            f"models {missing} have no split; the zoo changed since the split was made, refit the "
            f"representation"
        )
    return col.astype(str)
