"""Weights from local files in the published key layouts (eoreps.models.external, ``eoreps backbone
import``): state dicts saved by torchgeo's and timm's own constructors, and a Lightning-style checkpoint."""

from __future__ import annotations

import pytest
import torch

from eoreps.cli import main
from eoreps.errors import ConfigError, DataError
from eoreps.models import create_backbone, load_backbone
from eoreps.models.external import load_external, parse_key_map


def _features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.forward_head(model.forward_features(x), pre_logits=True)


@pytest.fixture(scope="module")
def tg_resnet18(tmp_path_factory):
    """torchgeo's SSL4EO-S12 S2 ResNet-18 layout: its own builder (weights=None), 13 bands, with fc."""
    tgm = pytest.importorskip("torchgeo.models")
    torch.manual_seed(0)
    model = tgm.resnet18(weights=None, in_chans=13).eval()
    path = tmp_path_factory.mktemp("tg") / "resnet18_sentinel2_all_moco.pth"
    torch.save(model.state_dict(), path)
    return path, model


def test_torchgeo_resnet18_enum_loads_and_carries_a_card(tg_resnet18) -> None:
    path, model = tg_resnet18
    bb = load_external("torchgeo:ResNet18_Weights.SENTINEL2_ALL_MOCO", path).eval()
    x = torch.randn(2, 13, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(bb(x), _features(model, x))
    card = bb.card
    assert card.backbone.name == "timm:resnet18" and card.backbone.in_chans == 13
    assert card.modalities == ["s2"] and card.method == "moco"
    assert card.band_names["s2"][8] == "B8A" and len(card.band_names["s2"]) == 13
    assert card.normalization["s2"]["std"] == [10000.0] * 13  # Normalize(mean=[0], std=[10000])
    ext = card.extra["external"]
    assert ext["units"] == "dn" and ext["input_size"] == 224 and len(ext["weights_sha256"]) == 64


def test_import_command_writes_a_backbone_folder(tg_resnet18, tmp_path, capsys) -> None:
    path, model = tg_resnet18
    out = tmp_path / "moco"
    with pytest.raises(SystemExit) as e:
        main(["backbone", "import", "torchgeo:ResNet18_Weights.SENTINEL2_ALL_MOCO", "--weights", str(path),
              "--out", str(out)])
    assert e.value.code == 0 and "units" in capsys.readouterr().out
    bb = load_backbone(out).eval()  # what every command reads
    x = torch.randn(1, 13, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(bb(x), _features(model, x))
    assert bb.card.extra["external"]["spec"] == "torchgeo:ResNet18_Weights.SENTINEL2_ALL_MOCO"


def test_import_command_missing_file_is_one_line(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["backbone", "import", "torchgeo:ResNet18_Weights.SENTINEL2_ALL_MOCO", "--weights",
              str(tmp_path / "nope.pth"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "nope.pth" in err


def test_torchgeo_vit_small_dino_layout(tmp_path) -> None:
    tgm = pytest.importorskip("torchgeo.models")
    model = tgm.vit_small_patch16_224(weights=None, in_chans=13).eval()
    path = tmp_path / "vit_small_dino.pth"
    torch.save(model.state_dict(), path)
    bb = load_external("torchgeo:ViTSmall16_Weights.SENTINEL2_ALL_DINO", path).eval()
    x = torch.randn(1, 13, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(bb(x), _features(model, x))
        assert bb(torch.randn(1, 13, 32, 32)).shape == (1, 384)  # any input size (dynamic_img_size)
    assert bb.card.method == "dino" and bb.card.backbone.kwargs == {"dynamic_img_size": True}


def test_unknown_enum_or_member_names_the_choices(tg_resnet18) -> None:
    with pytest.raises(ConfigError, match="SENTINEL2_ALL_MOCO"):
        load_external("torchgeo:ResNet18_Weights.SENTINEL2_ALL_MOKO", tg_resnet18[0])
    with pytest.raises(ConfigError, match="ResNet18_Weights"):
        load_external("torchgeo:ResNet19_Weights.SENTINEL2_ALL_MOCO", tg_resnet18[0])


def test_wrong_architecture_lists_missing_keys_in_one_line(tg_resnet18) -> None:
    with pytest.raises(DataError) as e:  # ResNet-18 weights into a ViT enum
        load_external("torchgeo:ViTSmall16_Weights.SENTINEL2_ALL_DINO", tg_resnet18[0])
    msg = str(e.value)
    assert "\n" not in msg and "missing" in msg and "patch_embed.proj.weight" in msg


def test_timm_checkpoint_in_chans_from_the_file(tmp_path) -> None:
    timm = pytest.importorskip("timm")
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, in_chans=4).eval()
    path = tmp_path / "vit_tiny.pth"
    torch.save(model.state_dict(), path)
    bb = load_external("timm:vit_tiny_patch16_224", path, bands=["B02", "B03", "B04", "B08"]).eval()
    assert bb.in_chans == 4 and bb.card.band_names == {"s2": ["B02", "B03", "B04", "B08"]}
    x = torch.randn(1, 4, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(bb(x), _features(model, x))


def test_lightning_checkpoint_with_key_map(tmp_path) -> None:
    """One's own SSL run: weights under state_dict, prefixed backbone., plus a projection head."""
    torch.manual_seed(1)
    enc = create_backbone("cnn-tiny", in_chans=6)
    state = {f"backbone.{k}": v for k, v in enc.state_dict().items()}
    state["projection_head.0.weight"] = torch.randn(8, enc.num_features)
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": state, "epoch": 3, "global_step": 10}, path)
    with pytest.raises(DataError) as e:
        load_external("cnn-tiny", path)
    assert "key_map 'backbone.='" in str(e.value) and "\n" not in str(e.value)
    bb = load_external("cnn-tiny", path, key_map="backbone.=", modality="s2")
    x = torch.randn(2, 6, 16, 16)
    enc.eval(), bb.eval()
    with torch.no_grad():
        torch.testing.assert_close(bb(x), enc(x))
    assert bb.card.extra["external"]["key_map"] == [["backbone.", ""]]


def test_key_map_forms(tmp_path) -> None:
    assert parse_key_map("model.encoder.=,module.=") == [("model.encoder.", ""), ("module.", "")]
    assert parse_key_map({"backbone.": None}) == [("backbone.", "")]
    f = tmp_path / "map.yaml"
    f.write_text("'student.backbone.': ''\n")
    assert parse_key_map(str(f)) == [("student.backbone.", "")]
    with pytest.raises(ConfigError, match="OLD=NEW"):
        parse_key_map("backbone.")


class _HParams:
    """Stands in for a pickled object in a checkpoint (Lightning hyper-parameters)."""


def test_unsafe_and_truncated_files_are_one_line_errors(tmp_path) -> None:
    obj = tmp_path / "obj.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "hparams": _HParams()}, obj)
    with pytest.raises(DataError, match="holds Python objects") as e:
        load_external("cnn-tiny", obj)
    assert str(e.value).startswith(str(obj)) and "\n" not in str(e.value)
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(b"junk")
    with pytest.raises(DataError, match="cannot read weights"):
        load_external("cnn-tiny", bad)


def test_torchgeo_cards_from_metadata_s1_db_and_landsat_without_a_modality() -> None:
    pytest.importorskip("torchgeo.models")
    from eoreps.models.external import torchgeo_card

    s1, how = torchgeo_card("torchgeo:ResNet50_Weights.SENTINEL1_ALL_MOCO")
    assert how["builder"] == "resnet50" and s1.modalities == ["s1"]
    assert s1.normalization["s1"] == {"mean": [-12.59, -20.26], "std": [5.26, 5.91]}
    assert s1.extra["external"]["units"] == "db"
    landsat, _ = torchgeo_card("torchgeo:ResNet18_Weights.LANDSAT_TM_TOA_MOCO")
    assert landsat.modalities is None and landsat.band_names is None  # B1..B7 are not Sentinel-2 bands
    assert landsat.extra["external"]["bands"][0] == "B01"


def test_composed_normalisation_equals_torchgeo_transforms() -> None:
    """SeCo's chain of three Normalize steps composed into one mean / std gives the same numbers."""
    tgm = pytest.importorskip("torchgeo.models")
    from eoreps.models.external import torchgeo_card

    card, _ = torchgeo_card("torchgeo:ResNet18_Weights.SENTINEL2_RGB_SECO")
    norm = card.normalization["s2"]
    x = torch.rand(1, 3, 256, 256) * 120
    want = tgm.ResNet18_Weights.SENTINEL2_RGB_SECO.transforms(x.clone())
    crop = x[..., 16:240, 16:240]
    mean, std = torch.tensor(norm["mean"])[:, None, None], torch.tensor(norm["std"])[:, None, None]
    torch.testing.assert_close((crop - mean) / std, want, rtol=1e-4, atol=1e-4)
    assert card.band_names["s2"] == ["B04", "B03", "B02"]


def test_safetensors_in_chans_from_the_stem_not_the_first_sorted_key(tmp_path) -> None:
    """safetensors sorts keys: ``stages.*`` (depthwise / block convolutions) comes before ``stem.*``."""
    from safetensors.torch import save_file

    torch.manual_seed(2)
    enc = create_backbone("cnn-tiny", in_chans=6).eval()
    path = tmp_path / "own.safetensors"
    save_file({k: v.contiguous() for k, v in enc.state_dict().items()}, str(path))
    bb = load_external("cnn-tiny", path).eval()
    x = torch.randn(2, 6, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(bb(x), enc(x))
    assert bb.in_chans == 6 and bb.card.backbone.in_chans == 6
    timm = pytest.importorskip("timm")
    convnext = timm.create_model("convnext_atto", pretrained=False, in_chans=4).eval()
    cpath = tmp_path / "convnext.safetensors"
    save_file({k: v.contiguous() for k, v in convnext.state_dict().items()}, str(cpath))
    first_4d = next(k for k, v in sorted(convnext.state_dict().items()) if v.dim() == 4)
    assert first_4d.startswith("stages.") and first_4d.endswith("conv_dw.weight")  # in 1, sorted first
    assert load_external("timm:convnext_atto", cpath).in_chans == 4


def test_checkpoint_without_num_batches_tracked_loads(tmp_path) -> None:
    torch.manual_seed(3)
    enc = create_backbone("cnn-tiny", in_chans=4).eval()
    state = {k: v for k, v in enc.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert len(state) < len(enc.state_dict())
    path = tmp_path / "old.pth"
    torch.save(state, path)
    bb = load_external("cnn-tiny", path).eval()
    x = torch.randn(1, 4, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(bb(x), enc(x))
    del state["stem.0.weight"]  # a real weight missing is still refused
    torch.save(state, path)
    with pytest.raises(DataError, match="1 missing"):
        load_external("cnn-tiny", path)


def test_non_timm_torchgeo_enum_is_refused_in_one_line(tg_resnet18) -> None:
    pytest.importorskip("torchgeo.models")
    with pytest.raises(ConfigError) as e:  # torchvision's Swin: refused before torchvision sees in_chans
        load_external("torchgeo:Swin_V2_B_Weights.NAIP_RGB_MI_SATLAS", tg_resnet18[0])
    msg = str(e.value)
    assert "\n" not in msg and "Swin_V2_B_Weights" in msg and "timm-built" in msg


class _Clamp(torch.nn.Module):
    """A value transform that is not a Normalize (a clamp of the input range)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(0, 1)


def test_int_resize_and_skipped_value_transforms() -> None:
    tv = pytest.importorskip("torchvision.transforms")
    from eoreps.models.external import _input_size, _skipped_transforms

    chain = torch.nn.Sequential(tv.Resize(256), _Clamp(), tv.Normalize([0.0], [255.0]))
    assert isinstance(tv.Resize(256).size, int) and _input_size(chain) == 256
    assert _input_size(torch.nn.Sequential(tv.Resize(256), tv.CenterCrop(224))) == 224
    assert _skipped_transforms(chain) == ["_Clamp"]


def test_eight_bit_torchgeo_weights_are_byte_units() -> None:
    pytest.importorskip("torchgeo.models")
    from eoreps.models.external import torchgeo_card

    satlas, _ = torchgeo_card("torchgeo:Swin_V2_B_Weights.NAIP_RGB_MI_SATLAS")  # Normalize(0, 255)
    landsat, _ = torchgeo_card("torchgeo:ResNet18_Weights.LANDSAT_TM_TOA_MOCO")
    assert satlas.extra["external"]["units"] == "byte" and landsat.extra["external"]["units"] == "byte"
    assert satlas.extra["external"]["skipped_transforms"] is None
