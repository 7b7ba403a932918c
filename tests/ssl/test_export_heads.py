"""Exports hold the projection heads: ``load_encoders(RUN).embed(x, space="joint")`` is what the method's
heads computed during pretraining (the space where a multimodal run's S1 and S2 meet)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from _pretrain_helpers import tiny_config  # noqa: I001

from eoreps.data.stats import BandStats
from eoreps.errors import DataError
from eoreps.evaluation.encoders import backbone_files
from eoreps.io import read_json, write_json
from eoreps.ssl.export import load_encoders
from eoreps.ssl.pretrain import run_pretrain


@pytest.fixture(scope="module")
def mm_run(simeo_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mm")
    run_pretrain(tiny_config("multimodal", simeo_small, out))
    return out


def _raw(n: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "s2": 1000 + 300 * torch.rand(n, 12, 32, 32, generator=g),
        "s1": -15 + 3 * torch.randn(n, 2, 32, 32, generator=g),
    }


def test_multimodal_joint_embeddings_are_the_trained_heads(mm_run: Path) -> None:
    from eoreps.ssl.methods.multimodal import Multimodal

    index = read_json(mm_run / "encoders.json")
    assert index["spaces"] == ["backbone", "joint"]
    assert set(index["heads"]) == {"s2", "s1"} and index["heads"]["s1"]["file"] == "head_s1.safetensors"
    assert (mm_run / "head_s2.json").is_file()
    enc = load_encoders(mm_run)
    assert set(enc) == {"s2", "s1"} and enc.spaces() == ["backbone", "joint"]
    # the same numbers as the Lightning module's own heads (eval mode), from the checkpoint
    module = Multimodal.load_from_checkpoint(mm_run / "checkpoints" / "last.ckpt", map_location="cpu").eval()
    raw = _raw()
    norm = module.normalize(raw)
    for m in ("s2", "s1"):
        want = module.heads[m](module.encoders[m](norm[m])).detach()
        got = enc.embed(raw, modality=m, space="joint")
        assert got.shape == (4, enc.dim(m, "joint")) == (4, 128)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(enc.embed(raw[m], modality=m), module.encoders[m](norm[m]).detach(),
                                   rtol=1e-4, atol=1e-5)  # a tensor works too; backbone is the default space
    assert enc["s2"].training  # embed restores the modules' mode


def test_heads_are_not_taken_for_backbones(mm_run: Path) -> None:
    assert set(backbone_files(str(mm_run))) == {"backbone_s2", "backbone_s1"}


def test_old_export_without_heads_loads_with_backbone_space_only(mm_run: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(mm_run, old, ignore=shutil.ignore_patterns("head_*", "checkpoints"))
    index = read_json(old / "encoders.json")
    for k in ("heads", "spaces"):
        index.pop(k)
    write_json(old / "encoders.json", index)
    enc = load_encoders(old)
    assert enc.spaces() == ["backbone"] and enc.embed(_raw(), modality="s1").shape == (
        4,
        enc["s1"].num_features,
    )
    with pytest.raises(DataError) as e:
        enc.embed(_raw(), modality="s1", space="joint")
    msg = str(e.value)
    assert str(old) in msg and "spaces: backbone" in msg and "\n" not in msg
    with pytest.raises(DataError, match="never saw modality 'dem'.*s2, s1"):
        enc.embed(_raw(), modality="dem")


def test_single_encoder_run_exports_its_projection(simeo_small: Path, tmp_path: Path) -> None:
    run_pretrain(tiny_config("simclr", simeo_small, tmp_path, modalities=["s2"], max_samples=32))
    enc = load_encoders(tmp_path)
    assert list(enc) == ["s2"] and enc.spaces("s2") == ["backbone", "joint"]
    assert enc.embed(_raw()["s2"], space="joint").shape == (4, 128)


@pytest.mark.parametrize(("method", "kind"), [("simclr", "simclr"), ("moco", "moco"), ("byol", "byol"),
                                              ("dino", "dino"), ("rotation", None), ("tile2vec", None)])
def test_which_methods_have_a_joint_space(method: str, kind: str | None, tmp_path: Path) -> None:
    from eoreps.ssl.heads import load_head, save_head
    from eoreps.ssl.methods import get_method

    stats = BandStats.defaults(["s2"]).to_dict()
    module = get_method(method)(modalities=["s2"], in_chans={"s2": 12}, stats=stats, backbone="cnn-tiny")
    heads = module.projection_heads()
    assert [spec.kind for _, spec in heads.values()] == ([kind] if kind else [])
    for head, spec in heads.values():
        x = torch.randn(3, module.encoder.num_features)
        assert head.eval()(x).shape == (3, spec.output_dim)
        loaded, card = load_head(save_head(head, spec, tmp_path / "head_s2.safetensors", {"encoder": "s2"}))
        assert card["head"]["kind"] == kind and card["output_dim"] == spec.output_dim
        torch.testing.assert_close(loaded(x), head(x))  # the round trip rebuilds the same function


def test_a_corrupt_head_is_a_one_line_error(mm_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(mm_run, run, ignore=shutil.ignore_patterns("checkpoints"))
    (run / "head_s1.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(DataError) as e:
        load_encoders(run)
    assert str(run / "head_s1.safetensors") in str(e.value) and "\n" not in str(e.value)
