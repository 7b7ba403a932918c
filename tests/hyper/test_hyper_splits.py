"""Splits by model: no model has checkpoints on two sides."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eoreps.errors import ConfigError, DataError
from eoreps.hyper.splits import split_column, split_models


def test_split_by_model_keeps_all_epochs_together():
    index = pd.DataFrame({"model_id": np.repeat(np.arange(40), 6), "epoch": np.tile(np.arange(6), 40)})
    a = split_models(index["model_id"].to_numpy(), 0.2, 0.2, seed=3)
    col = split_column(index, a)
    assert col.groupby(index["model_id"]).nunique().max() == 1  # one split per model
    counts = col.groupby(index["model_id"]).first().value_counts()
    assert counts["test"] == 8 and counts["val"] == 8 and counts["train"] == 24
    assert split_models(index["model_id"].to_numpy(), 0.2, 0.2, seed=3) == a  # deterministic
    assert split_models(index["model_id"].to_numpy(), 0.2, 0.2, seed=4) != a


def test_bad_splits_are_errors():
    with pytest.raises(ConfigError):
        split_models([0, 1], 0.2, 0.2)
    with pytest.raises(ConfigError):
        split_models(list(range(10)), 0.6, 0.5)
    with pytest.raises(DataError, match="no split"):
        split_column(pd.DataFrame({"model_id": [0, 99]}), {0: "train"})
