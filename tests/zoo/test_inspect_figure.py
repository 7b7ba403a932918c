"""The ``inspect.png`` figure: every panel has a title and the epoch axis shows integers only."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from eoreps.zoo.inspect import inspect_figure


def _index(epochs: int = 3, models: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [{"model_id": m, "epoch": e, "activation": "relu" if m % 2 else "gelu",
             "train_acc": rng.uniform(0.5, 1), "test_acc": rng.uniform(0.4, 0.9)}
            for m in range(models) for e in range(epochs)]
    return pd.DataFrame(rows)


def test_inspect_figure_titles_and_integer_epoch_axis():
    import matplotlib.pyplot as plt

    index = _index()
    fig = inspect_figure(index, index[index.epoch == 2])
    try:
        titles = [a.get_title() for a in fig.axes]
        assert all(titles) and len(set(titles)) == 3, titles
        assert "epoch 2" in titles[0]
        epoch_ax = fig.axes[1]
        assert epoch_ax.get_xlabel() == "epoch"
        locator = epoch_ax.xaxis.get_major_locator()
        assert isinstance(locator, MaxNLocator) and locator._integer
        ticks = [t for t in epoch_ax.get_xticks() if epoch_ax.get_xlim()[0] <= t <= epoch_ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    finally:
        plt.close(fig)
