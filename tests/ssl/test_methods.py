"""Every method pretrains on SimEO (quick settings) and exports a backbone that load_backbone rebuilds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _pretrain_helpers import cli_pretrain_quick, tiny_config  # noqa: I001

from eoreps.errors import ConfigError
from eoreps.models import load_backbone
from eoreps.ssl.export import input_normalizer, load_encoders, stack_inputs
from eoreps.ssl.pretrain import run_pretrain

SINGLE = ["simclr", "moco", "byol", "dino", "mae", "tile2vec"]


def _check_card(card: dict, method: str, modalities: list[str]) -> None:
    assert card["method"] == method
    assert card["modalities"] == modalities
    for m in modalities:
        assert (
            len(card["band_names"][m])
            == len(card["normalization"][m]["mean"])
            == len(card["normalization"][m]["std"])
        )
    assert card["steps"] > 0 and card["epochs"] == 1
    assert card["data"]["synthetic"] is True
    assert card["input"]["stack"] == modalities


@pytest.mark.parametrize("method", SINGLE)
def test_single_encoder_methods_pretrain_and_export(method: str, simeo_small: Path, tmp_path: Path) -> None:
    result = run_pretrain(tiny_config(method, simeo_small, tmp_path))
    assert result.steps > 0
    assert torch.isfinite(torch.tensor(result.metrics["train/loss"]))
    bb = load_backbone(tmp_path / "backbone.safetensors")
    _check_card(bb.card, method, ["s2", "s1"])
    assert bb.in_chans == 14
    # the card says how to build the input: normalise with the stored statistics, stack s2 then s1
    raw = {"s2": torch.full((2, 12, 32, 32), 1000.0), "s1": torch.full((2, 2, 32, 32), float("nan"))}
    x = stack_inputs(input_normalizer(bb.card)(raw), bb.card)
    assert x.shape == (2, 14, 32, 32) and torch.isfinite(x).all()
    assert bb.eval()(x).shape == (2, bb.num_features)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_bf16_pretraining_clips_the_fused_adamw(simeo_small: Path, tmp_path: Path, monkeypatch) -> None:
    """Pretraining clips gradients (3.0); under bf16-mixed Lightning's plugin refuses to clip a fused
    optimizer, so the method clips it itself (configure_gradient_clipping): the run keeps the fused AdamW,
    runs in bf16 and finishes."""
    import eoreps.ssl.methods.base as base

    built, clipped = [], []
    real_adamw, real_clip = base.adamw, base.SSLMethod.configure_gradient_clipping
    monkeypatch.setattr(base, "adamw", lambda *a, **k: built.append(real_adamw(*a, **k)) or built[-1])

    def clip(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        clipped.append((self.trainer.precision, gradient_clip_val))
        real_clip(self, optimizer, gradient_clip_val, gradient_clip_algorithm)

    monkeypatch.setattr(base.SSLMethod, "configure_gradient_clipping", clip)
    result = run_pretrain(tiny_config("simclr", simeo_small, tmp_path, precision="bf16", modalities=["s2"]))
    assert result.steps > 0 and torch.isfinite(torch.tensor(result.metrics["train/loss"]))
    assert built and all(o.defaults["fused"] is True for o in built)
    assert len(clipped) == result.steps and set(clipped) == {("bf16-mixed", 3.0)}


def test_clipping_under_bf16_bounds_the_gradient_norm():
    """SSLMethod.configure_gradient_clipping under bf16-mixed (no scaler) clips by norm like Lightning."""
    import lightning as L

    from eoreps.data.stats import BandStats
    from eoreps.ssl.methods import get_method

    stats = BandStats(mean={"s2": (0.0,) * 4}, std={"s2": (1.0,) * 4})
    m = get_method("simclr")(modalities=["s2"], in_chans={"s2": 4}, stats=stats.to_dict(),
                             backbone="cnn-tiny", image_size=(16, 16), max_steps=10)
    m.trainer = L.Trainer(accelerator="cpu", precision="bf16-mixed", gradient_clip_val=0.5, logger=False,
                          enable_checkpointing=False, enable_progress_bar=False)
    opt = m.configure_optimizers()["optimizer"]
    assert opt.defaults["fused"] is True
    for p in m.parameters():
        p.grad = torch.full_like(p, 3.0)
    m.configure_gradient_clipping(opt, 0.5, "norm")
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in m.parameters()]))
    assert abs(float(norm) - 0.5) < 1e-3


def test_multimodal_exports_one_encoder_per_modality(simeo_small: Path, tmp_path: Path) -> None:
    result = run_pretrain(tiny_config("multimodal", simeo_small, tmp_path, knn=True))
    assert set(result.encoders) == {"s2", "s1"}
    assert "s2/knn_acc" in result.metrics and "late_fusion/knn_acc" in result.metrics
    encoders = load_encoders(tmp_path)
    for m, enc in encoders.items():
        _check_card(enc.card, "multimodal", [m])
        assert set(enc.card["group"]["members"]) == {"s2", "s1"}
    assert encoders["s2"].in_chans == 12 and encoders["s1"].in_chans == 2
    from eoreps.ssl.export import LateFusionEncoder

    fused = LateFusionEncoder(encoders).eval()
    batch = {"s2": torch.randn(3, 12, 32, 32), "s1": torch.randn(3, 2, 32, 32)}
    assert fused(batch).shape == (3, fused.num_features)
    assert load_backbone(tmp_path / "backbone_s1.safetensors").card["modalities"] == ["s1"]


def test_multimodal_needs_two_modalities(simeo_small: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="two or more modalities"):
        run_pretrain(tiny_config("multimodal", simeo_small, tmp_path, modalities=["s2"]))


def test_mae_rejects_a_cnn(simeo_small: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ViT"):
        run_pretrain(tiny_config("mae", simeo_small, tmp_path, backbone="cnn-tiny", backbone_kwargs={}))


def test_cli_pretrain_quick(simeo_small: Path, tmp_path: Path) -> None:
    res = cli_pretrain_quick(["--method", "simclr"], simeo_small, tmp_path)
    assert res.exit_code == 0, res.output
    assert "pretrained simclr" in res.output
    assert load_backbone(tmp_path).card["modalities"] == ["s2"]


def test_cli_rejects_unknown_method(tmp_path: Path) -> None:
    from eoreps.cli import main

    with pytest.raises(SystemExit) as e:
        main(["pretrain", "--method", "simclrr", "--out", str(tmp_path)])
    assert e.value.code == 2


def test_optimizer_holds_every_trainable_parameter_once() -> None:
    from eoreps.data.stats import BandStats
    from eoreps.ssl.methods import get_method

    stats = BandStats(mean={"s2": (0.0,) * 12}, std={"s2": (1.0,) * 12}).to_dict()
    m = get_method("mae")(
        modalities=["s2"],
        in_chans={"s2": 12},
        stats=stats,
        backbone="timm:vit_tiny_patch16_224",
        backbone_kwargs={"img_size": 32, "patch_size": 8, "depth": 1, "embed_dim": 32, "num_heads": 2},
        image_size=(32, 32),
        max_steps=4,
    )
    opt = m.configure_optimizers()["optimizer"]
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(ids) == len(set(ids))  # the masked ViT shares the encoder's parameters
    assert set(ids) == {id(p) for p in m.parameters() if p.requires_grad}
