"""Typed configs and YAML files.

Every command that has many options takes ``--config FILE.yaml``. The YAML keys are the command's
option names (``--label-fraction`` may be written ``label_fraction`` or ``label-fraction``); options
given on the command line win over the file. An unknown key is an error naming the key, never a silent
fallback.

Library code uses dataclasses; :func:`load_dataclass` fills one from a YAML file or a dict with the same
strictness.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from eoreps.errors import ConfigError, unknown_name

T = TypeVar("T")


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing or malformed file raises :class:`ConfigError`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found; pass an existing YAML file to --config")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"{p}: not valid YAML ({first}); fix the syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of option: value at the top level")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def load_dataclass(cls: type[T], source: str | Path | dict[str, Any] | None = None, **overrides: Any) -> T:
    """Build dataclass ``cls`` from a YAML file or dict, then ``overrides``; unknown keys are errors.

    Nested dataclass fields accept nested mappings.
    """
    if source is None:
        data: dict[str, Any] = {}
    elif isinstance(source, dict):
        data = {str(k).replace("-", "_"): v for k, v in source.items()}
    else:
        data = read_yaml(source)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return _build(cls, data, where=str(source) if isinstance(source, (str, Path)) else cls.__name__)


def _build(cls: type[T], data: dict[str, Any], where: str) -> T:
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"{where}: {unknown_name('option', key, list(fields)).args[0]}")
        hint = hints.get(key)
        if isinstance(value, dict) and isinstance(hint, type) and dataclasses.is_dataclass(hint):
            value = _build(hint, value, where=f"{where}.{key}")
        kwargs[key] = value
    return cls(**kwargs)


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as a plain dict (for YAML/JSON), paths as strings."""
    def conv(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        return v

    return conv(dataclasses.asdict(obj))
