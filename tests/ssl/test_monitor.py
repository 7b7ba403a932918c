"""Collapse statistics, the loud collapse warning, and the kNN accuracy helper."""

from __future__ import annotations

import pytest
import torch

from eoreps.data.stats import BandStats
from eoreps.ssl.data import PretrainData
from eoreps.ssl.monitor import CollapseWarning, SSLMonitor, collapse_stats, knn_accuracy


def test_collapse_stats_separate_healthy_from_collapsed() -> None:
    g = torch.Generator().manual_seed(0)
    healthy = collapse_stats(torch.randn(256, 32, generator=g))
    assert healthy["std_ratio"] == pytest.approx(1.0, abs=0.1)
    assert healthy["erank"] > 25
    full = collapse_stats(torch.ones(256, 32) + 1e-9 * torch.randn(256, 32, generator=g))
    assert full["std_ratio"] < 1e-3
    dim1 = collapse_stats(torch.randn(256, 1, generator=g) * torch.randn(1, 32, generator=g)
                          + 1e-4 * torch.randn(256, 32, generator=g))  # one direction (sign flips)
    assert dim1["erank"] < 1.5


def _method(constant: bool) -> torch.nn.Module:
    from eoreps.ssl.methods import get_method

    stats = BandStats(mean={"s2": (0.0,) * 12}, std={"s2": (1.0,) * 12})
    m = get_method("simclr")(
        modalities=["s2"],
        in_chans={"s2": 12},
        stats=stats.to_dict(),
        backbone="cnn-tiny",
        image_size=(16, 16),
        max_steps=1,
    )
    if constant:  # a collapsed encoder: every input gives the same features
        for p in m.encoder.parameters():
            torch.nn.init.zeros_(p)
    return m


class _Trainer:
    current_epoch, global_step, max_steps, is_global_zero = 0, 1, 1, True


def test_monitor_warns_loudly_on_collapse_only() -> None:
    data = PretrainData({"s2": torch.randn(64, 12, 16, 16)}, labels=torch.arange(64) % 4)
    mon = SSLMonitor(data, knn_train=data, knn_val=data.subset(16))
    healthy = _method(False)
    healthy.log = lambda *a, **k: None  # no Trainer attached
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        mon.on_train_epoch_end(_Trainer(), healthy)
    assert mon.history[-1]["collapsed"] == []
    assert 0.0 <= mon.history[-1]["s2/knn_acc"] <= 1.0
    dead = _method(True)
    dead.log = lambda *a, **k: None
    with pytest.warns(CollapseWarning, match="REPRESENTATION COLLAPSE"):
        mon.on_train_epoch_end(_Trainer(), dead)
    assert mon.history[-1]["collapsed"]


def test_knn_accuracy_on_separable_clusters() -> None:
    g = torch.Generator().manual_seed(1)
    centers = torch.randn(3, 8, generator=g) * 5
    y = torch.arange(90) % 3
    z = centers[y] + 0.1 * torch.randn(90, 8, generator=g)
    assert knn_accuracy(z[:60], y[:60], z[60:], y[60:], k=5) == 1.0
