"""Per-step host work of the SSL training step (issue 25): the ``loss()`` extras are summed on the host and
logged once per epoch, with the same mean Lightning's per-step ``on_epoch`` logging gave."""

from __future__ import annotations

import pytest
import torch

from eoreps.data.stats import BandStats
from eoreps.ssl.methods import get_method


@pytest.fixture
def rotation():
    stats = BandStats(mean={"s2": (0.0,) * 4}, std={"s2": (1.0,) * 4}, bands={"s2": ("a", "b", "c", "d")})
    m = get_method("rotation")(modalities=["s2"], in_chans={"s2": 4}, stats=stats.to_dict(),
                               backbone="cnn-tiny", image_size=(16, 16), crop_scale=None)
    calls: list[tuple[str, float, bool]] = []

    def log(name: str, value: float | torch.Tensor, on_step: bool = False, **kw: object) -> None:
        calls.append((name, float(torch.as_tensor(value).detach()), on_step))

    m.log = log
    return m, calls


def test_extras_are_logged_once_per_epoch_as_their_mean(rotation):
    m, calls = rotation
    torch.manual_seed(0)
    for i in range(3):
        m.training_step(m.make_views(m.normalize({"s2": torch.randn(4, 4, 16, 16)})), i)
    assert [c[0] for c in calls] == ["train/loss"] * 3  # per step: the loss only (was: + each extra)
    total, n = m._epoch_logs["rotation_acc"]
    m.on_train_epoch_end()
    name, value, on_step = calls[-1]
    assert (name, on_step, n) == ("train/rotation_acc", False, 3)
    assert value == pytest.approx(total / 3) and 0 <= value <= 1
    assert m._epoch_logs == {}  # the next epoch starts afresh
