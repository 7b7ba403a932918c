"""``--precision auto`` times an SSL method's real training step (issue 25 review): its own views and loss,
so targets/keys, projectors, predictors, DINO's local crops, MAE's masking and decoder and Jigsaw's tiles
are in the timed step; the run's weights and random state are left alone."""

from __future__ import annotations

import pytest
import torch

from eoreps import precision_probe as PP
from eoreps.data.stats import BandStats
from eoreps.ssl.methods import get_method

STATS = BandStats(mean={"s2": (0.0,) * 4, "s1": (0.0,) * 2}, std={"s2": (1.0,) * 4, "s1": (1.0,) * 2})
VIT = {"img_size": 16, "patch_size": 8, "depth": 1, "embed_dim": 32, "num_heads": 2}


def _method(name: str, **kw):
    backbone = ("timm:vit_tiny_patch16_224", VIT) if name == "mae" else ("cnn-tiny", {})
    return get_method(name)(modalities=["s2", "s1"], in_chans={"s2": 4, "s1": 2}, stats=STATS.to_dict(),
                            backbone=backbone[0], backbone_kwargs=backbone[1], image_size=(16, 16),
                            max_steps=4, **kw)


@pytest.mark.parametrize("name", ["byol", "dino", "mae", "jigsaw", "tile2vec"])
def test_the_timed_step_is_the_methods_own_loss(name, monkeypatch):
    """Every parameter of the method (heads, predictors, targets) is in the step; a real timing of it
    runs and leaves the method's weights and the global random state unchanged."""
    monkeypatch.setattr(PP, "MIN_ROUNDS", 1)
    monkeypatch.setattr(PP, "MAX_ROUNDS", 1)
    method = _method(name, **({"num_local": 2, "out_dim": 64} if name == "dino" else {}))
    work = method.precision_workload(4)
    (step, batch), = work.parts
    assert {id(p) for p in step.parameters()} == {id(p) for p in method.parameters()}
    assert step(batch).dim() == 0  # the method's loss (DINO's weight-normed head: now a non-leaf weight)
    before = {k: v.clone() for k, v in method.state_dict().items()}
    torch.manual_seed(5)
    fp32_s, bf16_s = PP.time_workload(work)
    after = torch.rand(2)
    torch.manual_seed(5)
    assert fp32_s > 0 and bf16_s > 0 and torch.equal(after, torch.rand(2))
    assert all(torch.equal(v, method.state_dict()[k]) for k, v in before.items())


def test_views_the_modules_do_not_show_are_in_the_key():
    """DINO's local crops are views, not layers: another count of them is another verdict."""
    two, four = (_method("dino", num_local=n, out_dim=64).precision_workload(4) for n in (2, 4))
    assert len(two.spec["views"][1]) == 2 and len(four.spec["views"][1]) == 4
    assert PP.cache_key(two) != PP.cache_key(four)
    tiles = _method("tile2vec").precision_workload(4)
    assert tiles.shapes == [{k: {"s1": [4, 2, 16, 16], "s2": [4, 4, 16, 16]}
                             for k in ("anchor", "distant", "neighbor")}]
