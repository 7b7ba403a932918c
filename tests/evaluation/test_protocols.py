"""Every protocol on tiny data: it learns, reports its trainable parameters, and adapters
start as the identity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from eval_toy import toy_data

from eoreps.errors import ConfigError
from eoreps.evaluation.encoders import MethodSpec
from eoreps.evaluation.protocols import Cell, ProtocolOptions, TrainOptions, run_protocol
from eoreps.evaluation.protocols.adapter import LoRAConv2d, SpectralAdapter, add_lora
from eoreps.models import create_backbone, save_backbone

FAST = ProtocolOptions(train=TrainOptions(epochs=1, min_steps=25, batch_size=32, lr=3e-3))


def _cell(data, method, protocol, fraction=1.0, seed=0, cache=None) -> Cell:
    idx = data.fraction_indices([fraction], seed)[fraction]
    return Cell(data, method, protocol, fraction, seed, idx, FAST, cache)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A saved single-backbone 'pretrained' encoder reading s2 (random weights, a real card)."""
    torch.manual_seed(0)
    bb = create_backbone("cnn-tiny", in_chans=4)
    path = tmp_path_factory.mktemp("bb") / "s2.safetensors"
    save_backbone(bb, path, {"method": "test", "modalities": ["s2"]})
    return path


def test_linear_and_knn_learn_separable_classes(tmp_path, pretrained) -> None:
    data = toy_data("classify")
    m = MethodSpec("pre", backbone=str(pretrained))
    lin = run_protocol(_cell(data, m, "linear", cache=tmp_path))
    knn = run_protocol(_cell(data, m, "knn", cache=tmp_path))
    assert lin["oa"] > 0.45 and knn["oa"] > 0.45  # chance is 1/3; frozen random conv features of a toy task
    d = create_backbone("cnn-tiny", in_chans=4).num_features
    assert lin["trainable_params"] == d * 3 + 3 and knn["trainable_params"] == 0
    assert 0 < lin["aa"] <= 1 and {"acc/a", "acc/b", "acc/c"} <= set(lin)
    assert len(list((tmp_path / "features").glob("*.npy"))) == 3  # one per split, shared by linear and kNN


def test_trained_protocols_and_parameter_counts(pretrained) -> None:
    data = toy_data("classify")
    m = MethodSpec("pre", backbone=str(pretrained))
    ft = run_protocol(_cell(data, m, "finetune"))
    ad = run_protocol(_cell(data, m, "adapter"))
    sup = run_protocol(
        _cell(data, MethodSpec("sup", supervised=True, arch="cnn-tiny", modalities=["s2"]), "supervised")
    )
    bb = create_backbone("cnn-tiny", in_chans=4)
    n_backbone, head = sum(p.numel() for p in bb.parameters()), bb.num_features * 3 + 3
    assert ft["trainable_params"] == n_backbone + head
    assert ad["adapter"] == "lora" and 0 < ad["adapter_params"] < ft["trainable_params"] / 2
    assert ad["trainable_params"] == ad["adapter_params"] + head
    for r in (ft, ad, sup):
        assert r["steps"] == 25 and np.isfinite(r["final_loss"]) and r["oa"] > 0.4


def test_multilabel_and_segmentation() -> None:
    rand = MethodSpec("rand", backbone="random", arch="cnn-tiny", fusion="late")
    ml = toy_data("multilabel")
    lin = run_protocol(_cell(ml, rand, "linear"))
    assert {"f1_macro", "f1_micro", "map", "f1/a"} <= set(lin) and lin["map"] > 0.5
    seg = toy_data("segment")
    frozen = run_protocol(_cell(seg, rand, "linear"))
    assert 0 <= frozen["miou"] <= 1 and frozen["trainable_params"] > 0
    with pytest.raises(ConfigError):
        run_protocol(_cell(seg, rand, "knn"))


def test_spectral_adapter_identity_and_band_mapping() -> None:
    x = torch.randn(2, 6, 5, 5)
    same = SpectralAdapter(6, 6)
    torch.testing.assert_close(same(x), x)  # residual, zero-initialised output layer
    many = SpectralAdapter(202, 12, hidden=16, kernel=5)
    assert many(torch.randn(1, 202, 3, 3)).shape == (1, 12, 3, 3)
    assert sum(p.numel() for p in many.parameters()) < 2000  # independent of the band count


def test_lora_starts_as_base_and_freezes_it() -> None:
    torch.manual_seed(0)
    bb = create_backbone("cnn-tiny", in_chans=3).eval()
    x = torch.randn(2, 3, 8, 8)
    before = bb(x)
    bb.requires_grad_(False)
    added = add_lora(bb, rank=2, alpha=2.0)
    assert added and all(isinstance(a, (LoRAConv2d,)) or hasattr(a, "down") for a in added)
    torch.testing.assert_close(bb(x), before)
    trainable = {n for n, p in bb.named_parameters() if p.requires_grad}
    assert trainable and all(".down." in n or ".up." in n for n in trainable)


def test_protocol_method_mismatch_is_an_error() -> None:
    data = toy_data("classify", n_train=30, n_eval=15)
    with pytest.raises(ConfigError):
        run_protocol(_cell(data, MethodSpec("sup", supervised=True, arch="cnn-tiny"), "linear"))
    with pytest.raises(ConfigError):
        run_protocol(_cell(data, MethodSpec("r", backbone="random", arch="cnn-tiny"), "supervised"))
