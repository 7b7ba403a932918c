"""Pretraining methods by name: ``@register_method`` declares what a method needs.

Each method file registers its class::

    @register_method("tile2vec", data_kind="triplets", build_data=build_triplet_data, options=Tile2VecOptions)
    class Tile2Vec(SSLMethod): ...

The registration says which modalities it takes (``encoders="stacked"``: one encoder over the stacked
channels, or ``"per-modality"``: one encoder each, with ``min_modalities``), what data it trains on
(``data_kind`` and the ``build_data`` hook that :func:`eoreps.ssl.pretrain.run_pretrain` calls, so the
runner has no per-method branches), its default backbone and its typed ``options`` (a dataclass of the
``method_kwargs`` consumed outside the LightningModule, e.g. Tile2Vec's scene sampling; the other
``method_kwargs`` are the class's constructor arguments).

:data:`METHODS` lists the built-ins with the module that registers each (the decorator, next to the
code, is the single description; the listing keeps ``eoreps --help`` from importing torch). A method
outside eoreps needs only its file and the decorator: importing the file registers it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eoreps.errors import ConfigError, unknown_name
from eoreps.registry import Registry

if TYPE_CHECKING:
    from eoreps.ssl.data import PretrainData
    from eoreps.ssl.methods.base import SSLMethod
    from eoreps.ssl.pretrain import PretrainConfig

_PKG = "eoreps.ssl.methods"
METHODS: Registry[MethodInfo] = Registry("pretraining method", lazy={
    "simclr": f"{_PKG}.simclr", "multimodal": f"{_PKG}.multimodal", "moco": f"{_PKG}.moco",
    "byol": f"{_PKG}.byol", "dino": f"{_PKG}.dino", "mae": f"{_PKG}.mae", "tile2vec": f"{_PKG}.tile2vec",
    "rotation": f"{_PKG}.rotation", "jigsaw": f"{_PKG}.jigsaw", "band-prediction": f"{_PKG}.band_prediction",
    "inpainting": f"{_PKG}.inpainting",
})
ENCODERS = ("stacked", "per-modality")


@dataclass
class MethodData:
    """What a method's ``build_data`` hook returns.

    Attributes:
        dataset: what the data loader serves (``BatchDataset``, ``TripletDataset``, ...).
        train: the training images (statistics, channel counts, the card's ``data``).
        patches: patches for the collapse monitor and the kNN bank.
        image_size: ``(H, W)`` of the images the encoder sees.
    """

    dataset: Any
    train: PretrainData
    patches: PretrainData
    image_size: tuple[int, int]


DataBuilder = Callable[["PretrainConfig", Any], MethodData]


def build_patch_data(cfg: PretrainConfig, options: Any = None) -> MethodData:
    """The default hook: the training patches of ``cfg.data``, randomly cropped (``cfg.crop_px()``) and
    served a batch at a time: streamed from a pack (``loader="stream"``:
    :class:`~eoreps.ssl.data.StreamedPatches`) or from memory (``loader="memory"``, also for a pack given
    as ``data``: :class:`~eoreps.ssl.data.BatchDataset`); the monitor patches are centre-cropped to the same
    size."""
    from eoreps.ssl.data import BatchDataset, crop_label, load_patches, stream_source

    data, data_options = cfg.source()
    crop = cfg.crop_px()
    streamed = None
    if cfg.loader == "stream":  # a pack given with loader="memory" is held in memory, as asked
        streamed = stream_source(data, cfg.modalities, crop, cfg.seed, cfg.max_samples, data_options,
                                 name=cfg.data)
    if streamed is not None:
        patches = load_patches(
            data,
            cfg.modalities,
            "train",
            max_samples=max(cfg.monitor_samples, cfg.knn_train_samples),
            seed=cfg.seed,
            options=data_options,
            crop=streamed.crop,
        )
        return MethodData(streamed, streamed, patches, streamed.image_size)
    train = load_patches(data, cfg.modalities, "train", max_samples=cfg.max_samples, seed=cfg.seed,
                         options=data_options)
    dataset = BatchDataset(train, crop, cfg.seed)
    train.info.update(loader="memory", crop=crop_label(dataset.crop))
    return MethodData(dataset, train, train.centre(dataset.crop), dataset.image_size)


@dataclass(frozen=True)
class MethodInfo:
    """A registered pretraining method (see the module docstring)."""

    name: str
    cls: type[SSLMethod]
    encoders: str = "stacked"
    min_modalities: int = 1
    data_kind: str = "patches"
    build_data: DataBuilder = build_patch_data
    options: type | None = None

    def option_names(self) -> list[str]:
        """Fields of :attr:`options` (empty without one)."""
        return [f.name for f in dataclasses.fields(self.options)] if self.options else []

    def split_kwargs(self, kwargs: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
        """``method_kwargs`` -> (the :attr:`options` instance or ``None``, the constructor's arguments)."""
        own = set(self.option_names())
        ctor = {k: v for k, v in kwargs.items() if k not in own}
        return (self.options(**{k: v for k, v in kwargs.items() if k in own}) if self.options else None), ctor

    def check_modalities(self, modalities: list[str]) -> None:
        """One-line error when the method needs more modalities than ``modalities``."""
        if len(modalities) < self.min_modalities:
            need = {2: "two", 3: "three"}.get(self.min_modalities, str(self.min_modalities))
            raise ConfigError(f"{self.name} pretraining needs {need} or more modalities, got "
                              f"{modalities}; e.g. modalities=s2,s1")


def register_method(name: str, *, encoders: str = "stacked", min_modalities: int | None = None,
                    default_backbone: str | None = None, data_kind: str = "patches",
                    build_data: DataBuilder = build_patch_data,
                    options: type | None = None) -> Callable[[type[SSLMethod]], type[SSLMethod]]:
    """Class decorator registering a :class:`~eoreps.ssl.methods.base.SSLMethod` as ``name``.

    Args:
        name: the ``--method`` name.
        encoders: ``"stacked"`` (one encoder reads every modality's channels) or ``"per-modality"``.
        min_modalities: modalities it needs (default 2 for per-modality methods, else 1).
        default_backbone: the backbone when ``--backbone`` is not given (default: ``cnn-small``).
        data_kind: what it trains on, for docs and errors (``"patches"``, ``"triplets"``).
        build_data: ``(PretrainConfig, options) -> MethodData`` (default: the training patches).
        options: dataclass of the ``method_kwargs`` the constructor does not take (read by ``build_data``).
    """
    if encoders not in ENCODERS:
        raise ConfigError(
            f"register_method('{name}'): encoders '{encoders}' is not one of {', '.join(ENCODERS)}"
        )
    if options is not None and not dataclasses.is_dataclass(options):
        raise ConfigError(f"register_method('{name}'): options must be a dataclass, got {options!r}")

    def deco(cls: type[SSLMethod]) -> type[SSLMethod]:
        cls.name = name
        cls.single_encoder = encoders == "stacked"
        if default_backbone is not None:
            cls.default_backbone = default_backbone
        need = min_modalities if min_modalities is not None else (2 if encoders == "per-modality" else 1)
        METHODS.add(name, MethodInfo(name, cls, encoders, need, data_kind, build_data, options))
        return cls

    return deco


def method_info(name: str) -> MethodInfo:
    """The registration of method ``name`` (``-``/``_`` spellings accepted; one-line error otherwise)."""
    return METHODS.get(name)


def list_methods() -> list[str]:
    """Every method name, without importing any method."""
    return METHODS.names()


def method_options(name: str) -> list[str]:
    """The options ``--method-kwargs`` may set for method ``name``: its constructor arguments (down to
    :class:`SSLMethod`, whose arguments ``run_pretrain`` sets itself), the base's ``warmup_frac`` and the
    fields of its registered ``options`` dataclass."""
    import inspect

    from eoreps.ssl.methods.base import SSLMethod

    info = method_info(name)
    names = {"warmup_frac", *info.option_names()}
    for klass in info.cls.__mro__:
        if klass is SSLMethod:
            break
        if "__init__" in vars(klass):
            params = inspect.signature(klass.__init__).parameters.values()
            names |= {
                p.name for p in params if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
            }
    return sorted(names)


def check_method_kwargs(name: str, kwargs: Mapping[str, object]) -> None:
    """One-line :class:`~eoreps.errors.ConfigError` for a ``--method-kwargs`` key method ``name`` lacks."""
    options = method_options(name)
    for key in kwargs:
        if key not in options:
            raise unknown_name(f"option of method '{name}' (method_kwargs)", key, options)
