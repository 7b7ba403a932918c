"""Adding a pretraining method = one file + ``@register_method``: a toy one trains through run_pretrain."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from _pretrain_helpers import tiny_config  # noqa: I001

from eoreps.errors import ConfigError
from eoreps.ssl.methods import (
    METHODS,
    MethodData,
    check_method_kwargs,
    list_methods,
    method_info,
    register_method,
)
from eoreps.ssl.methods.base import SSLMethod
from eoreps.ssl.pretrain import PretrainConfig, build_data, run_pretrain


@dataclass
class ToyOptions:
    """Data option of the toy method (consumed by its data hook, not by its constructor)."""

    keep: int = 32


def toy_data(cfg: PretrainConfig, options: ToyOptions) -> MethodData:
    """The training patches, cut to ``options.keep`` samples: proves the hook and its options are used."""
    from eoreps.ssl.data import BatchDataset, load_patches

    train = load_patches(cfg.data, cfg.modalities, "train", max_samples=options.keep, seed=cfg.seed)
    return MethodData(BatchDataset(train), train, train, train.image_size)


@pytest.fixture()
def toy_method():
    """Register a toy method (mean squared feature loss), remove it afterwards."""

    @register_method("toy-ssl", default_backbone="cnn-tiny", data_kind="patches", build_data=toy_data,
                     options=ToyOptions)
    class ToySSL(SSLMethod):
        def __init__(self, scale: float = 1.0, **kwargs) -> None:
            super().__init__(**kwargs)
            self.scale = scale

        def loss(self, views):
            z = self.encoder(self.stack(views))
            return self.scale * z.pow(2).mean(), {}

    yield ToySSL
    METHODS.remove("toy-ssl")


def test_toy_method_pretrains_through_run_pretrain(toy_method, simeo_small: Path, tmp_path: Path) -> None:
    assert "toy-ssl" in list_methods()
    cfg = tiny_config("toy_ssl", simeo_small, tmp_path, backbone="", batch_size=8, max_samples=None,
                      method_kwargs={"keep": 24, "scale": 0.5}, modalities=["s2"])
    result = run_pretrain(cfg)
    record = json.loads((tmp_path / "pretrain.json").read_text())
    assert record["config"]["method"] == "toy-ssl"  # the registered spelling of toy_ssl
    assert record["config"]["backbone"] == "cnn-tiny"  # the registration's default backbone
    assert record["data"]["num_samples"] == 24  # the hook's option reached the data
    assert result.steps == 24 // 8  # quick: one epoch of 3 batches
    assert torch.isfinite(torch.tensor(result.metrics["train/loss"]))
    assert method_info("toy-ssl").cls is toy_method and toy_method.name == "toy-ssl"


def test_toy_method_is_gone_after_the_fixture() -> None:
    assert "toy-ssl" not in list_methods()
    with pytest.raises(ConfigError, match="unknown pretraining method 'toy-ssl'"):
        method_info("toy-ssl")


def test_registrations_declare_what_each_method_needs() -> None:
    for name in list_methods():  # the lazy listing and the decorators agree
        assert method_info(name).name == name and method_info(name).cls.name == name
    mm = method_info("multimodal")
    assert (mm.encoders, mm.min_modalities, mm.cls.single_encoder) == ("per-modality", 2, False)
    assert method_info("mae").cls.default_backbone.startswith("timm:vit")
    t2v = method_info("tile2vec")
    assert t2v.data_kind == "triplets" and t2v.option_names() == ["tile_size", "neighborhood", "num_scenes",
                                                                   "scene_size"]
    assert method_info("band_prediction").name == "band-prediction"


def test_tile2vec_options_live_in_method_kwargs() -> None:
    check_method_kwargs("tile2vec", {"tile_size": 16, "margin": 0.5})
    with pytest.raises(ConfigError, match="tile_size"):
        check_method_kwargs("simclr", {"tile_size": 16})
    cfg = PretrainConfig(method="tile2vec", tile_size=16)  # the old keyword still works: moved
    assert cfg.method_kwargs == {"tile_size": 16}
    options, ctor = method_info("tile2vec").split_kwargs({"tile_size": 16, "margin": 0.5})
    assert (options.tile_size, options.num_scenes, ctor) == (16, 16, {"margin": 0.5})


def test_listing_methods_imports_no_method() -> None:
    code = ("import sys; from eoreps.ssl.methods import list_methods; names = list_methods(); "
            "assert 'lightning' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules); "
            "print(len(names))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) == len(list_methods())


def test_knn_split_errors_that_are_bugs_propagate(simeo_small: Path, tmp_path: Path, monkeypatch) -> None:
    import eoreps.ssl.data as ssl_data

    real = ssl_data.load_patches

    def broken_val(data, modalities, split, **kw):
        if split == "val":
            raise RuntimeError("a bug in a loader")
        return real(data, modalities, split, **kw)

    monkeypatch.setattr(ssl_data, "load_patches", broken_val)
    cfg = tiny_config("simclr", simeo_small, tmp_path, knn=True).resolved()
    with pytest.raises(RuntimeError, match="a bug in a loader"):  # was swallowed by `except Exception`
        build_data(cfg)

    def no_val(data, modalities, split, **kw):
        if split == "val":
            raise ConfigError("unknown split 'val'")
        return real(data, modalities, split, **kw)

    monkeypatch.setattr(ssl_data, "load_patches", no_val)
    with pytest.warns(UserWarning, match="online kNN disabled"):
        _, _, knn = build_data(cfg)
    assert knn is None
