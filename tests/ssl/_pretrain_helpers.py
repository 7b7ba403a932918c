"""Shared settings of the pretraining tests (imported by the tests and by the subprocess drivers)."""

from __future__ import annotations

from pathlib import Path

from eoreps.ssl.pretrain import PretrainConfig


def tiny_config(method: str, data: Path, out: Path, **kw):
    """Quick settings of one method on the small SimEO folder (cnn-tiny; a 2-block ViT for MAE)."""
    base = dict(method=method, data=str(data), modalities=["s2", "s1"], backbone="cnn-tiny", quick=True,
                out=str(out), batch_size=16, max_samples=64, monitor_samples=32, knn=False, accelerator="cpu")
    if method == "mae":
        base.update(
            backbone="timm:vit_tiny_patch16_224",
            backbone_kwargs={"img_size": 32, "patch_size": 8, "depth": 2, "embed_dim": 64, "num_heads": 2},
        )
    base.update(kw)
    return PretrainConfig(**base)


def cli_pretrain_quick(method_args: list[str], data: Path, out: Path):
    """``eoreps pretrain`` (in-process) of a ``--quick`` cnn-tiny run on ``s2`` of the small SimEO folder."""
    from typer.testing import CliRunner

    from eoreps.cli import app

    return CliRunner().invoke(
        app,
        ["pretrain", *method_args, "--data", str(data), "--modalities", "s2", "--backbone", "cnn-tiny",
         "--max-samples", "64", "--batch-size", "16", "--no-knn", "--accelerator", "cpu", "--quick",
         "--out", str(out)],
    )
