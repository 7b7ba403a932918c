"""Configs generate the CLI: a command's options, ``--help`` text and YAML keys come from
its config dataclass.

A config field becomes a command-line option when it is declared with :func:`opt`::

    @dataclass
    class FitConfig:
        label_fraction: float = opt(1.0, help="Train on this fraction of labels.")
        max_train: int | None = opt(None, help="Cap on training samples (0 = all).", none=0)
        modalities: list[str] = opt(factory=lambda: ["s2"], help="Comma-separated inputs, e.g. s2,s1.")

and a Typer command takes the whole config at once::

    @from_config(FitConfig)
    def fit(ctx: typer.Context, cfg: FitConfig, seed: SeedOpt = 0, ..., config: ConfigOpt = None) -> None:
        run_fit(cfg)

The option name is the field name with dashes (``--label-fraction``), the type comes from the annotation
(``bool`` -> ``--x/--no-x``; lists -> one comma-separated string; ``X | None`` -> ``none`` is the command-line
value meaning None, e.g. ``--max-train 0``), the help from the metadata. ``--config FILE.yaml`` keys are the
field names: the CLI options through :func:`eoreps.commands.common._config_callback` (a wrong
type names the file and key) and also the config-only fields (declared without :func:`opt`),
checked against their annotation. ``--quick`` calls the config's one ``apply_quick(keep)`` method,
``keep`` being what the user gave.

Why a small generator rather than jsonargparse (which torchgeo / LightningCLI use): we keep Typer/click,
its ``--config`` handling with one-line errors that name the file and key, our comma-separated list syntax
(``--modalities s2,s1``) and ``--max-train 0`` conventions that existing command lines rely on, and the
shared options of :mod:`eoreps.commands.common`. jsonargparse would bring its own parser, error format and
list syntax (``--modalities '[s2,s1]'``), breaking those command lines; this module is ~200 lines.
"""

from __future__ import annotations

import collections.abc
import contextlib
import dataclasses
import functools
import inspect
import re
import types
import typing
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from eoreps.errors import ConfigError, EoRepsError, unknown_name

if TYPE_CHECKING:
    import typer

META = "eoreps.cli"  # key of the field metadata
_UNSET: Any = object()
_CONFIG_ATTR = "__eoreps_config__"
_ONLY_KEY = "eoreps.config_only"  # ctx.meta: config-only fields given in --config


@dataclasses.dataclass(frozen=True)
class OptSpec:
    """How one config field appears on the command line.

    Attributes:
        help: the ``--help`` text.
        flag: the option name (default: ``--`` + the field name with dashes; ``"--x/--no-x"`` for bools).
        aliases: further (old) names of the same option.
        parse: command-line value -> field value (default: from the annotation).
        none: the command-line value that means ``None`` for an ``X | None`` field (e.g. ``0`` or ``""``).
        cli: False keeps the field out of the command line (YAML only).
        click: further ``typer.Option`` arguments (e.g. ``{"dir_okay": False}`` for a file).
    """

    help: str
    flag: str | None = None
    aliases: tuple[str, ...] = ()
    parse: Callable[[Any], Any] | None = None
    none: Any = _UNSET
    cli: bool = True
    click: tuple[tuple[str, Any], ...] = ()


def opt(default: Any = dataclasses.MISSING, *, help: str, factory: Any = dataclasses.MISSING,  # noqa: A002
        flag: str | None = None, aliases: tuple[str, ...] = (), parse: Callable[[Any], Any] | None = None,
        none: Any = _UNSET, cli: bool = True, click: dict[str, Any] | None = None) -> Any:
    """A dataclass field that is also a command-line option (see :class:`OptSpec` for the arguments)."""
    spec = OptSpec(help=help, flag=flag, aliases=aliases, parse=parse, none=none, cli=cli,
                   click=tuple(sorted((click or {}).items())))
    return dataclasses.field(default=default, default_factory=factory, metadata={META: spec})


def spec_of(f: dataclasses.Field) -> OptSpec | None:
    """The :class:`OptSpec` of a field (None: a config-only field)."""
    return f.metadata.get(META)


def cli_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of ``cls`` that are command-line options, in declaration order."""
    return [f for f in dataclasses.fields(cls) if (s := spec_of(f)) is not None and s.cli]


def flag_of(f: dataclasses.Field) -> str:
    """The option name of a field (``--label-fraction``)."""
    spec = spec_of(f)
    flag = spec.flag if spec and spec.flag else f"--{f.name.replace('_', '-')}"
    return flag.split("/")[0]


def _unoptional(hint: Any) -> tuple[Any, bool]:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]), True  # noqa: UP007 (built at run time)
    return hint, False


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return _UNSET


def _is_list(base: Any) -> bool:
    return typing.get_origin(base) in (list, tuple, collections.abc.Sequence)


def _cli_type_and_default(f: dataclasses.Field, hint: Any) -> tuple[Any, Any]:
    spec = spec_of(f)
    assert spec is not None
    base, optional = _unoptional(hint)
    default = _default(f)
    if base is bool:
        return bool, bool(default)
    if (
        _is_list(base)
        or typing.get_origin(base) is dict
        or spec.parse is not None
        and base not in (int, float)
    ):
        if default is None or default is _UNSET:
            shown = spec.none if spec.none is not _UNSET else ""
        elif isinstance(default, dict):
            shown = ",".join(f"{k}={v}" for k, v in default.items())
        elif isinstance(default, (list, tuple)):
            shown = ",".join(str(v) for v in default)
        else:
            shown = str(default)
        return str, shown
    if optional and spec.none is not _UNSET:
        return base, spec.none if default is None else default
    if optional:
        return base | None, default
    return base, default


def parse_list(value: str, what: str, choices: list[str] | None = None) -> list[str]:
    """Split 'a,b,c' into names, checking each against ``choices`` (one-line error if unknown)."""
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise ConfigError(f"empty list for {what}; give comma-separated names")
    if choices is not None:
        for v in items:
            if v not in choices:
                raise unknown_name(what, v, choices)
    return items


def parse_devices(value: str) -> int | str:
    """``--devices``: a number of devices >= 1, or 'auto' (one-line error otherwise)."""
    if value == "auto":
        return value
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"--devices {value}: give a number of devices >= 1 or 'auto'")
    return int(value)


def parse_floats(value: str, what: str) -> list[float]:
    """Split '0.01,0.1,1.0' into floats with a one-line error on a bad item or an empty list."""
    try:
        numbers = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        numbers = []
    if not numbers:
        raise ConfigError(f"{what}: '{value}' is not a comma-separated list of numbers")
    return numbers


def parse_ints(value: str, what: str) -> list[int]:
    """Split '0,5,10' into integers with a one-line error on a bad item (``1.5``, ``last``)
    or an empty list."""
    numbers = parse_floats(value, what)
    if not all(v.is_integer() for v in numbers):
        raise ConfigError(f"{what}: '{value}' is not a comma-separated list of integers")
    return [int(v) for v in numbers]


def parse_kwargs(value: str, what: str) -> dict[str, Any]:
    """``"img_size=32,patch_size=4"`` -> ``{"img_size": 32, "patch_size": 4}`` (values parsed
    as YAML scalars)."""
    import yaml

    out: dict[str, Any] = {}
    for item in [v.strip() for v in value.split(",") if v.strip()]:
        if "=" not in item:
            raise ConfigError(f"{what}: '{item}' is not KEY=VALUE; write e.g. 'img_size=32,patch_size=4'")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = yaml.safe_load(v)
        except yaml.YAMLError:
            raise ConfigError(f"{what}: cannot parse the value of '{k}' ('{v}')") from None
    return out


def _singular(name: str) -> str:
    """What one item of a list field is called in messages (``modalities`` -> ``modality``)."""
    word = name.rsplit("_", 1)[-1]
    return word[:-3] + "y" if word.endswith("ies") else word.removesuffix("s")


def _to_field(f: dataclasses.Field, hint: Any, raw: Any) -> Any:
    """The field value of a command-line value."""
    spec = spec_of(f)
    assert spec is not None
    base, optional = _unoptional(hint)
    if optional and spec.none is not _UNSET and raw == spec.none:
        return None
    if spec.parse is not None:
        return spec.parse(raw)
    if _is_list(base) and isinstance(raw, str):
        if optional and not raw.strip():
            return None
        item = (typing.get_args(base) or (str,))[0]
        what = flag_of(f)
        values: list[Any] = (
            parse_floats(raw, what)
            if item is float
            else parse_ints(raw, what)
            if item is int
            else parse_list(raw, _singular(f.name))
        )
        return tuple(values) if typing.get_origin(base) is tuple else values
    if base is str and isinstance(raw, Path):
        return str(raw)
    return raw


def option_parameters(cls: type) -> list[inspect.Parameter]:
    """One keyword-only Typer parameter per CLI field of ``cls`` (name = field name)."""
    import typer  # here: config modules import this module without needing the CLI
    hints = typing.get_type_hints(cls)
    params = []
    for f in cli_fields(cls):
        spec = spec_of(f)
        assert spec is not None
        typ, default = _cli_type_and_default(f, hints[f.name])
        flag = spec.flag or f"--{f.name.replace('_', '-')}"
        if typ is bool and spec.flag is None:  # an explicit flag stays as written (e.g. a plain switch)
            flag = f"{flag}/--no-{flag[2:]}"
        option = typer.Option(flag, *spec.aliases, help=spec.help, **dict(spec.click))
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=Annotated[typ, option]))
    return params


def build_config(cls: type, values: dict[str, Any], config_only: dict[str, Any] | None = None) -> Any:
    """The config of parsed command-line ``values`` (CLI fields and shared options named like fields, e.g.
    ``seed``, ``out``, ``data``) plus ``config_only`` YAML values; other keys are ignored."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for name, raw in values.items():
        if name not in fields:
            continue
        f = fields[name]
        if spec_of(f) is not None:
            kwargs[name] = _to_field(f, hints[name], raw)
        else:
            kwargs[name] = str(raw) if isinstance(raw, Path) and hints[name] is str else raw
    kwargs.update(config_only or {})
    return cls(**kwargs)


def config_only_value(ctx: typer.Context, key: str, raw: Any, where: str) -> bool:
    """For ``--config``: accept ``key`` if it is a config-only field of the command's config (checked against
    its annotation; a wrong type names the file and key); False when the command has no such field."""
    from eoreps.config import _fits, _hint_name, _yaml_float

    cls = getattr(ctx.command.callback, _CONFIG_ATTR, None)
    if cls is None:
        return False
    fields = {f.name: f for f in dataclasses.fields(cls) if spec_of(f) is None}
    if key not in fields:
        return False
    hint = typing.get_type_hints(cls)[key]
    if isinstance(raw, str) and not _fits(raw, hint) and _fits(0.0, hint):
        raw = _yaml_float(raw, hint, where)
    elif not _fits(raw, hint):
        raise ConfigError(f"{where}: {raw!r} is not a valid {_hint_name(hint)}")
    ctx.meta.setdefault(_ONLY_KEY, {})[key] = raw
    return True


def config_keys_of(ctx: typer.Context) -> list[str]:
    """The config-only field names of the command's config (none for a command without one)."""
    cls = getattr(ctx.command.callback, _CONFIG_ATTR, None)
    return [] if cls is None else [f.name for f in dataclasses.fields(cls) if spec_of(f) is None]


def config_keys(cls: type) -> list[str]:
    """Every field name of ``cls``: the YAML keys its command accepts (besides the shared options)."""
    return [f.name for f in dataclasses.fields(cls)]


def error_flags(cls: type, params: Mapping[str, str] | None = None) -> dict[str, str]:
    """Field name -> option name for :func:`flags_in_errors`: the CLI fields of ``cls``, the command's other
    parameters (``params``: shared options such as ``mask_classes`` -> ``--mask-classes``) and the library
    names ``cls.ERROR_NAMES`` maps onto a field (``{"erase_prob": "erase"}``: a nested config calls it
    otherwise)."""
    flags = {**(params or {}), **{f.name: flag_of(f) for f in cli_fields(cls)}}
    for library_name, field_name in getattr(cls, "ERROR_NAMES", {}).items():
        if field_name in flags:
            flags[library_name] = flags[field_name]
    return flags


def _with_flags(message: str, flags: Mapping[str, str]) -> str:
    """``label_fraction=1.5 ...`` -> ``--label-fraction 1.5 ...``; ``x=True`` -> ``--x`` (a switch)."""
    # not after a word character, '.', '-' or a path separator ('out/split=train' is a path, not an argument)
    pattern = re.compile(r"(?<![\w./\\-])(" + "|".join(map(re.escape, flags)) + r")=(True\b)?")
    return pattern.sub(lambda m: flags[m.group(1)] + ("" if m.group(2) else " "), message)


@contextlib.contextmanager
def flags_in_errors(cls: type, params: Mapping[str, str] | None = None) -> Iterator[None]:
    """Library errors name config fields (``label_fraction=1.5 must be in (0, 1]``, callable from Python); on
    the command line the same message names the option: ``--label-fraction 1.5 must be in (0, 1]``.

    Args:
        cls: the command's config class.
        params: the command's other options, parameter name -> option name (see :func:`error_flags`).
    """
    try:
        yield
    except EoRepsError as e:
        flags = error_flags(cls, params)
        if not flags or len(e.args) != 1 or not isinstance(e.args[0], str):
            raise
        message = _with_flags(e.args[0], flags)
        if message == e.args[0]:
            raise
        try:
            renamed = type(e)(message)
        except TypeError:  # a subclass with other constructor arguments: keep it as it is
            raise e from None
        raise renamed from None


_GIVEN = frozenset({"COMMANDLINE", "DEFAULT_MAP", "ENVIRONMENT"})


def explicit(ctx: typer.Context) -> set[str]:
    """Names of the options the user gave (on the command line or in the ``--config`` file), as opposed to
    those left at their defaults: what ``--quick`` must not replace."""
    given = set()
    for name in ctx.params:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name in _GIVEN:  # by name: Typer may vendor its own click
            given.add(name)
    return given


def echo_quick(changes: list[str]) -> None:
    """Print the one line that says what ``--quick`` changed (nothing when it changed nothing)."""
    from eoreps.quick import describe

    if changes:
        import typer

        typer.echo(describe(changes))


class QuickConfig(Protocol):
    def apply_quick(self, keep: Collection[str]) -> list[str]: ...


def from_config(cls: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a Typer command the options of config class ``cls``; the command receives ``cfg`` (built from the
    options, the ``--config`` file and the shared options named like fields) and, with ``--quick``,
    ``cfg.apply_quick(keep)`` has been applied (``keep``: what the user gave) and what it changed printed."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(command, eval_str=True)
        if "cfg" not in sig.parameters or "ctx" not in sig.parameters:
            raise TypeError(f"{command.__name__} needs ctx and cfg parameters for @from_config")
        generated = option_parameters(cls)
        names = {p.name for p in generated}
        head = [p for p in sig.parameters.values() if p.name == "ctx"]
        keep = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in sig.parameters.values()
                if p.name not in ("ctx", "cfg") and p.name not in names]

        @functools.wraps(command)
        def wrapper(*args: Any, **kw: Any) -> Any:
            ctx: typer.Context = kw["ctx"] if "ctx" in kw else args[0]
            values = {n: kw.pop(n) for n in names if n in kw}
            shared = {n: v for n, v in kw.items() if n != "ctx"}
            only = dict(ctx.meta.get(_ONLY_KEY, {}))
            params = {
                p.name: p.opts[0] for p in ctx.command.params if p.name and p.opts and p.opts[0][:2] == "--"
            }
            with flags_in_errors(cls, params):
                cfg = build_config(cls, {**shared, **values}, only)
                if kw.get("quick") and hasattr(cfg, "apply_quick"):
                    echo_quick(cfg.apply_quick(explicit(ctx) | set(only)))
                return command(*args, cfg=cfg, **kw)

        params = [*head, *generated, *keep]
        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        setattr(wrapper, _CONFIG_ATTR, cls)
        return wrapper

    return decorate
