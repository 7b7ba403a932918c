"""Evaluation protocols by name: ``@register_protocol`` on a runner declares where it applies.

::

    @register_protocol("knn", tasks=("classify", "multilabel"), options=(KnnOptions,))
    def run_knn(cell: Cell) -> dict[str, float]: ...

A registration names the task kinds the runner handles, the method kinds it evaluates
(``REPRESENTATION`` = pretrained and random backbones, or ``("supervised",)``) and the option groups
of :class:`~eoreps.evaluation.protocols.base.ProtocolOptions` it reads (they enter the cell hash,
so changing another protocol's options does not recompute its cells). A protocol may register one
runner per task from several files (``linear``: logistic regression for classify/multilabel, a
frozen-encoder decoder for segment). :data:`PROTOCOL_REGISTRY` lists the built-ins with the
modules that register them, so the names are known without importing torch.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eoreps.errors import ConfigError
from eoreps.registry import Registry

if TYPE_CHECKING:
    from eoreps.evaluation.protocols.base import Cell, ProtocolOptions

Runner = Callable[["Cell"], dict[str, Any]]
TASKS = ("classify", "multilabel", "segment")
REPRESENTATION = ("pretrained", "random")
_PKG = "eoreps.evaluation.protocols"
PROTOCOL_REGISTRY: Registry[ProtocolInfo] = Registry("protocol", lazy={
    "linear": (f"{_PKG}.linear", f"{_PKG}.segment"), "knn": f"{_PKG}.knn", "finetune": f"{_PKG}.finetune",
    "adapter": f"{_PKG}.adapter", "supervised": f"{_PKG}.finetune",
})


@dataclass(frozen=True)
class ProtocolInfo:
    """A registered protocol: its runner per task kind, the method kinds it evaluates, its option types."""

    name: str
    runners: Mapping[str, Runner]
    method_kinds: tuple[str, ...]
    options: tuple[type, ...]

    def option_groups(self) -> list[str]:
        """The fields of :class:`ProtocolOptions` holding one of :attr:`options` (e.g.
        ``["linear", "train"]``)."""
        from eoreps.evaluation.protocols.base import ProtocolOptions

        hints = typing.get_type_hints(ProtocolOptions)
        return [f.name for f in dataclasses.fields(ProtocolOptions) if hints[f.name] in self.options]

    def relevant_options(self, opts: ProtocolOptions) -> dict[str, Any]:
        """The option groups this protocol reads, as plain dicts (what a cell's hash includes)."""
        return {g: dataclasses.asdict(getattr(opts, g)) for g in self.option_groups()}


def register_protocol(name: str, *, tasks: tuple[str, ...], method_kinds: tuple[str, ...] = REPRESENTATION,
                      options: tuple[type, ...] = ()) -> Callable[[Runner], Runner]:
    """Decorator registering ``runner(cell) -> metrics`` as protocol ``name`` for ``tasks``.

    Args:
        name: the protocol's name in studies and ``--protocol``.
        tasks: task kinds this runner handles (of :data:`TASKS`); another file may register the others.
        method_kinds: ``"pretrained"``, ``"random"``, ``"supervised"`` methods it evaluates.
        options: the option dataclasses of :class:`ProtocolOptions` it reads.
    """
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        raise ConfigError(
            f"register_protocol('{name}'): unknown task kind '{bad[0]}'; use {', '.join(TASKS)}"
        )

    def deco(runner: Runner) -> Runner:
        old = PROTOCOL_REGISTRY.registered(name)
        runners = dict(old.runners) if old else {}
        if old and (old.method_kinds, old.options) != (tuple(method_kinds), tuple(options)):
            raise ConfigError(f"protocol '{name}': every task's registration must declare the same "
                              "method_kinds and options")
        taken = [t for t in tasks if runners.get(t) not in (None, runner)]
        if taken:
            raise ConfigError(f"protocol '{name}' already has a runner for task '{taken[0]}'")
        runners.update(dict.fromkeys(tasks, runner))
        PROTOCOL_REGISTRY.add(
            name, ProtocolInfo(name, runners, tuple(method_kinds), tuple(options)), replace=True
        )
        return runner

    return deco


def protocol_info(name: str) -> ProtocolInfo:
    """The registration of protocol ``name`` (one-line error for an unknown name)."""
    return PROTOCOL_REGISTRY.get(name)


def _kinds_text(kinds: tuple[str, ...]) -> str:
    return (
        "supervised"
        if kinds == ("supervised",)
        else "representation"
        if set(kinds) == set(REPRESENTATION)
        else "/".join(kinds)
    )


def check_protocol(protocol: str, method_kind: str, task: str) -> None:
    """Raise :class:`ConfigError` for a combination that does not exist (from the registrations)."""
    info = protocol_info(protocol)
    if method_kind not in info.method_kinds:
        fits = [n for n in PROTOCOL_REGISTRY.names() if method_kind in protocol_info(n).method_kinds]
        raise ConfigError(f"protocol '{protocol}' does not apply to a {method_kind} method; it evaluates "
                          f"{_kinds_text(info.method_kinds)} methods; use {' / '.join(fits)}")
    if task not in info.runners:
        fits = [n for n in PROTOCOL_REGISTRY.names() if task in protocol_info(n).runners
                and method_kind in protocol_info(n).method_kinds]
        raise ConfigError(
            f"protocol '{protocol}' has no {task} variant; use {' / '.join(fits) or 'another task'}"
        )


def protocol_runner(protocol: str, task: str) -> Runner:
    """The function that runs ``protocol`` on a ``task`` cell."""
    return protocol_info(protocol).runners[task]
