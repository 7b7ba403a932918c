"""Typed configs and YAML files.

Every command that has many options takes ``--config FILE.yaml``. The YAML keys are the command's
option names (``--label-fraction`` may be written ``label_fraction`` or ``label-fraction``); options
given on the command line win over the file. An unknown key is an error naming the key, never a silent
fallback.

Library code uses dataclasses; :func:`load_dataclass` fills one from a YAML file or a dict with the same
strictness.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from eoreps.errors import ConfigError, unknown_name

T = TypeVar("T")


def read_yaml(path: str | Path, what: str = "--config") -> dict[str, Any]:
    """Read a YAML mapping; a missing or malformed file raises :class:`ConfigError` (``what``: the option
    that named the file, for the message)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: YAML file not found; pass an existing YAML file to {what}")
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
        hint = hints.get(key, Any)
        if isinstance(value, dict) and isinstance(hint, type) and dataclasses.is_dataclass(hint):
            value = _build(hint, value, where=f"{where}.{key}")
        elif isinstance(value, str) and not _fits(value, hint) and _fits(0.0, hint):
            value = _yaml_float(value, hint, f"{where}: key '{key}'")  # YAML 1.1 reads 1e-3 as a string
        elif not _fits(value, hint):
            raise ConfigError(f"{where}: key '{key}': {value!r} is not a valid {_hint_name(hint)}")
        kwargs[key] = value
    return cls(**kwargs)


_SCALARS: dict[Any, tuple[type, ...]] = {
    int: (int,),
    float: (int, float),
    str: (str,),
    bool: (bool,),
    Path: (str, Path),
}


def _fits(value: Any, hint: Any) -> bool:
    """Whether a YAML value fits a field's type hint (containers element by element; a hint this does not
    know, e.g. a class, accepts instances of it)."""
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args, strict=True))
        return not args or all(_fits(v, args[0]) for v in value)
    if origin in (dict, collections.abc.Mapping):
        return isinstance(value, dict) and (not args or all(_fits(k, args[0]) and _fits(v, args[1])
                                                            for k, v in value.items()))
    if hint in _SCALARS:
        return isinstance(value, _SCALARS[hint]) and (hint is bool or not isinstance(value, bool))
    if isinstance(hint, type):
        return isinstance(value, (hint, dict) if dataclasses.is_dataclass(hint) else hint)
    return True


def _yaml_float(value: str, hint: Any, where: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{where}: {value!r} is not a valid {_hint_name(hint)}") from None


def _hint_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


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
