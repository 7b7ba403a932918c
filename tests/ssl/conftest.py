"""Fixtures of the pretraining tests: a small SimEO folder (synthetic), generated once and cached."""

from __future__ import annotations

from pathlib import Path

import pytest

SIMEO_N, SIMEO_SCENES, SIMEO_SCENE_SIZE = 320, 3, 96


@pytest.fixture(scope="session")
def simeo_small() -> Path:
    """A SimEO folder with 320 patches (~220 train) and 3 scenes of 96 px, cached across runs."""
    from eoreps.data.simeo.io import cached_simeo

    return cached_simeo(n=SIMEO_N, seed=0, scenes=SIMEO_SCENES, scene_size=SIMEO_SCENE_SIZE)


def tiny_config(method: str, data: Path, out: Path, **kw):
    """Quick settings of one method on the small SimEO folder (cnn-tiny; a 2-block ViT for MAE)."""
    from eoreps.ssl.pretrain import PretrainConfig

    base = dict(method=method, data=str(data), modalities=["s2", "s1"], backbone="cnn-tiny", quick=True,
                out=str(out), batch_size=16, max_samples=64, monitor_samples=32, knn=False, accelerator="cpu")
    if method == "mae":
        base.update(backbone="timm:vit_tiny_patch16_224",
                    backbone_kwargs={"img_size": 32, "patch_size": 8, "depth": 2, "embed_dim": 64, "num_heads": 2})
    base.update(kw)
    return PretrainConfig(**base)
