"""The method specs of a study, and their validation: the bottom of the evaluation workflows.

:class:`MethodSpec` (what a compared method is) and :func:`check_pretrain` live here, below
:mod:`~eoreps.evaluation.encoders` (builds a spec's encoder), :mod:`~eoreps.evaluation.pretraining`
(runs a spec's pretraining) and :mod:`~eoreps.evaluation.study` (the grid), so that each of those imports
downwards only (``tests/test_import_layers.py``). See :mod:`eoreps.evaluation.encoders` for the kinds of
method.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eoreps.errors import ConfigError

#: PretrainConfig fields the study sets itself (not allowed in a method's ``pretrain:`` mapping)
SET_BY_STUDY = ("out", "resume")
#: MethodSpec fields added after studies were first written (left out of cell hashes while ``None``)
_OPTIONAL = ("pretrain", "weights", "key_map", "band_fill", "data_units")


@dataclass
class MethodSpec:
    """One compared method (a row group of the tables, a line of the plot).

    Attributes:
        name: label in tables and plots (unique within a study).
        backbone: ``"random"``, a path, or ``{name: path}`` (see the module docstring); ``None`` with
            ``supervised``.
        supervised: train from scratch on the labelled subset (the protocol is then ``supervised``).
        arch: registry name of the architecture for random / supervised encoders.
        modalities: inputs of random / supervised encoders (default: all modalities of the data); for
            a pretrained backbone without modalities in its card, the modalities it reads.
        fusion: ``early`` or ``late`` for random / supervised encoders with several modalities.
        protocols: restrict this method to these protocols (default: the study's).
        pretrain: options of a pretraining the study runs first (:class:`eoreps.ssl.pretrain.PretrainConfig`
            fields, ``method`` required); ``backbone`` is then set to its output by the study.
        weights: a local weights file for an external ``backbone`` spec (``torchgeo:<Enum>.<MEMBER>``,
            ``timm:<model>`` or an eoreps backbone name; :func:`eoreps.models.external.load_external`).
        key_map: prefix rewrites of the weights' keys (``"backbone.="``, a mapping or a YAML file).
        band_fill: how bands the weights expect but the data lacks are filled (``mean``, ``nearest``;
            :mod:`eoreps.models.bands`); default ``mean``.
        data_units: the data's units when the guess from its statistics is wrong (``dn``, ``byte``,
            ``reflectance``, ``db``, ``linear``; :mod:`eoreps.models.units`); default: guessed.
    """

    name: str
    backbone: str | dict[str, str] | None = None
    supervised: bool = False
    arch: str = "cnn-small"
    modalities: list[str] | None = None
    fusion: str = "early"
    protocols: list[str] | None = None
    pretrain: dict[str, Any] | None = None
    weights: str | None = None
    key_map: str | dict[str, str] | None = None
    band_fill: str | None = None
    data_units: str | None = None

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or "__" in self.name:
            raise ConfigError(f"method name {self.name!r}: give a non-empty name without '/' or '__'")
        if self.supervised and self.backbone not in (None, "random"):
            raise ConfigError(f"method '{self.name}': supervised training starts from scratch; "
                              f"drop backbone: {self.backbone}")
        if self.pretrain is not None:
            check_pretrain(self)
        elif not self.supervised and self.backbone is None:
            raise ConfigError(f"method '{self.name}': give backbone: PATH or backbone: random "
                              "(or supervised: true, or pretrain: {method: ...})")
        if self.fusion not in ("early", "late"):
            raise ConfigError(f"method '{self.name}': fusion '{self.fusion}' is not early or late")
        self._check_external()

    def _check_external(self) -> None:
        from eoreps.models.bands import FILL_RULES
        from eoreps.models.external import is_external_spec
        from eoreps.models.units import UNITS

        if self.weights is not None and (self.kind != "pretrained" or not isinstance(self.backbone, str)):
            raise ConfigError(f"method '{self.name}': weights: {self.weights} needs a backbone spec such as "
                              "torchgeo:ResNet18_Weights.SENTINEL2_ALL_MOCO or timm:resnet18")
        spec = is_external_spec(self.backbone) or str(self.backbone).startswith("timm:")
        if spec and self.weights is None:
            raise ConfigError(f"method '{self.name}': backbone {self.backbone} needs weights: FILE (a local "
                              "copy of the published weights; nothing is downloaded)")
        if self.key_map is not None and self.weights is None:
            raise ConfigError(f"method '{self.name}': key_map applies to weights: FILE; give weights")
        from eoreps.models.external import parse_key_map

        parse_key_map(self.key_map)  # a malformed map fails now, not after the data is loaded
        if self.band_fill is not None and self.band_fill not in FILL_RULES:
            raise ConfigError(f"method '{self.name}': band_fill '{self.band_fill}' is not one of "
                              f"{', '.join(FILL_RULES)}")
        if self.data_units is not None and self.data_units not in UNITS:
            raise ConfigError(f"method '{self.name}': data_units '{self.data_units}' is not one of "
                              f"{', '.join(UNITS)}")

    def hash_record(self) -> dict[str, Any]:
        """The fields that determine results, for cell hashes: optional fields left at ``None`` are omitted,
        so the hashes of studies written before they existed stay valid. A ``weights`` file is keyed by its
        content (``weights_sha256``) as well as its path: new weights at the same path are new cells."""
        rec = {k: v for k, v in dataclasses.asdict(self).items() if k not in _OPTIONAL or v is not None}
        if self.weights is not None and Path(self.weights).is_file():  # a missing file fails when loaded
            rec["weights_sha256"] = _weights_sha256(str(Path(self.weights).resolve()),
                                                    *_stamp(Path(self.weights)))
        return rec

    @property
    def kind(self) -> str:
        """``"supervised"``, ``"random"`` or ``"pretrained"``."""
        if self.supervised:
            return "supervised"
        return "random" if self.backbone == "random" else "pretrained"


def _stamp(path: Path) -> tuple[int, int, int]:
    """``(inode, size, mtime_ns)`` of ``path``: the cache key of :func:`_weights_sha256`."""
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=64)
def _weights_sha256(path: str, inode: int, size: int, mtime_ns: int) -> str:
    """SHA-256 of a weights file, hashed once per (path, inode, size, mtime) however many cells ask."""
    from eoreps.digest import file_sha256

    return file_sha256(path)


def check_pretrain(method: MethodSpec) -> None:
    """Validate ``method.pretrain`` (a mapping of pretraining options with a known ``method``)."""
    spec = method.pretrain
    if spec is None:
        return
    from eoreps.ssl.methods import METHODS
    from eoreps.ssl.pretrain import PretrainConfig

    where = f"method '{method.name}': pretrain"
    if not isinstance(spec, dict) or "method" not in spec:
        raise ConfigError(f"{where} must be a mapping with at least 'method', "
                          "e.g. {method: rotation, epochs: 20}")
    if spec["method"] not in METHODS:
        raise ConfigError(f"{where}: unknown pretraining method '{spec['method']}'; "
                          f"choose one of {', '.join(METHODS)}")
    allowed = {f.name for f in dataclasses.fields(PretrainConfig)} - set(SET_BY_STUDY)
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown option '{unknown[0]}' (the study sets out and resume); valid: "
                          f"{', '.join(sorted(allowed))}")
    if method.supervised:
        raise ConfigError(f"{where}: a supervised method trains from scratch; drop pretrain or supervised")
    if method.backbone == "random":
        raise ConfigError(f"{where}: drop 'backbone: random' (the pretrained backbone is evaluated)")
