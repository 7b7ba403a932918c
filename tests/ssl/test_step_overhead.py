"""Per-step host work of the SSL training step (issue 25): the ``loss()`` extras are summed where they are
(on the training device, never read back per step) and logged once per epoch, with the same mean Lightning's
per-step ``on_epoch`` logging gave."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from eoreps.data.stats import BandStats
from eoreps.ssl.methods import get_method


@pytest.fixture
def rotation(monkeypatch):
    """The rotation method with ``log`` recorded (values kept as given) and its per-step extras recorded
    as ``loss()`` returned them."""
    stats = BandStats(mean={"s2": (0.0,) * 4}, std={"s2": (1.0,) * 4}, bands={"s2": ("a", "b", "c", "d")})
    m = get_method("rotation")(modalities=["s2"], in_chans={"s2": 4}, stats=stats.to_dict(),
                               backbone="cnn-tiny", image_size=(16, 16), crop_scale=None)
    calls: list[tuple[str, object, bool]] = []
    extras: list[dict[str, object]] = []
    loss = m.loss

    def log(name: str, value: float | torch.Tensor, on_step: bool = False, **kw: object) -> None:
        calls.append((name, value, on_step))

    def recorded_loss(views: object) -> tuple[torch.Tensor, dict[str, object]]:
        out, logs = loss(views)
        extras.append({k: v.detach().clone() if isinstance(v, torch.Tensor) else v for k, v in logs.items()})
        return out, {**logs, "constant": 0.25}  # a float extra (BYOL's momentum) beside the tensor one

    monkeypatch.setattr(m, "log", log)
    monkeypatch.setattr(m, "loss", recorded_loss)
    return m, calls, extras


def test_extras_are_logged_once_per_epoch_as_their_mean(rotation, monkeypatch):
    m, calls, extras = rotation
    torch.manual_seed(0)
    batches = [m.make_views(m.normalize({"s2": torch.randn(4, 4, 16, 16)})) for _ in range(3)]
    item, to_float = torch.Tensor.item, torch.Tensor.__float__
    synced: list[str] = []

    def counted(name: str, real: Callable[..., float]) -> Callable[..., float]:  # each waits for a GPU
        def call(self: torch.Tensor, *a: object) -> float:
            synced.append(name)
            return real(self, *a)
        return call

    with monkeypatch.context() as patch:
        patch.setattr(torch.Tensor, "item", counted("item", item))
        patch.setattr(torch.Tensor, "__float__", counted("float", to_float))
        for i, views in enumerate(batches):
            m.training_step(views, i)
    assert synced == []  # no step reads an extra back to the host (was: float() of each, every step)
    assert [c[0] for c in calls] == ["train/loss"] * 3  # per step: the loss only (was: + each extra)
    m.on_train_epoch_end()
    logged = {name: (float(value), on_step) for name, value, on_step in calls[3:]}
    want = sum(float(e["rotation_acc"]) for e in extras) / 3  # the mean of what loss() returned per step
    assert logged["train/rotation_acc"] == (pytest.approx(want, abs=1e-6), False)
    assert logged["train/constant"] == (pytest.approx(0.25), False)
    assert len(extras) == 3 and 0 <= want <= 1
    m.on_train_epoch_end()
    assert len(calls) == 5  # the next epoch starts afresh: nothing left to log
