"""The one registry class behind every extension point (backbones, pretraining methods, evaluation
protocols, data formats, zoo architectures; table in ``docs/architecture.md``).

A :class:`Registry` maps a name to an entry. Names are looked up with ``-`` and ``_`` interchangeable
and case ignored (``band_prediction`` finds ``band-prediction``); an unknown name raises the standard
one-line :func:`eoreps.errors.unknown_name` error. Entries are added by a decorator in the file that
defines them; ``lazy`` maps the built-in names to the module that registers them, so listing names
(``eoreps --help``) imports nothing and the first lookup of a name imports just its module::

    METHODS = Registry("pretraining method", lazy={"simclr": "eoreps.ssl.methods.simclr"})
    METHODS.names()        # ["simclr"] -- no import
    METHODS.get("simclr")  # imports eoreps.ssl.methods.simclr, whose decorator calls METHODS.add
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from eoreps.errors import ConfigError, unknown_name

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> entry, with lazily imported built-ins.

    Args:
        kind: what is registered, for error messages (``"backbone"``, ``"protocol"``, ...).
        lazy: built-in name -> the module (or modules) whose import registers it (kept in listing order).
    """

    def __init__(self, kind: str, lazy: Mapping[str, str | tuple[str, ...]] | None = None) -> None:
        self.kind = kind
        self._lazy = {k: (v,) if isinstance(v, str) else tuple(v) for k, v in (lazy or {}).items()}
        self._entries: dict[str, T] = {}
        self._imported: set[str] = set()

    # ------------------------------------------------------------------------------- registering
    def add(self, name: str, entry: T, replace: bool = False) -> T:
        """Register ``entry`` as ``name``; another entry under the same name is a :class:`ConfigError`
        unless ``replace`` (a registration that extends an earlier one, e.g. a protocol's other task)."""
        old = self._entries.get(name)
        if not replace and old is not None and old is not entry and old != entry:
            raise ConfigError(f"{self.kind} '{name}' is already registered; choose another name")
        self._entries[name] = entry
        return entry

    def registered(self, name: str) -> T | None:
        """The entry registered under exactly ``name`` so far (imports nothing), or ``None``."""
        return self._entries.get(name)

    def remove(self, name: str) -> None:
        """Forget ``name`` (tests register toy entries and remove them afterwards)."""
        self._entries.pop(name, None)
        self._lazy.pop(name, None)

    # ----------------------------------------------------------------------------------- looking up
    def names(self) -> list[str]:
        """Every name: built-ins in their listing order, then the others in registration order."""
        return list(self._lazy) + [n for n in self._entries if n not in self._lazy]

    def lookup(self, name: str) -> str | None:
        """The registered spelling of ``name`` (``-``/``_`` and case ignored), or ``None``."""
        known = set(self._lazy) | set(self._entries)
        if name in known:
            return name
        key = name.strip().lower()
        for candidate in (key, key.replace("_", "-"), key.replace("-", "_")):
            if candidate in known:
                return candidate
        return None

    def canonical(self, name: str, note: str = "") -> str:
        """The registered spelling of ``name``; unknown names raise the one-line error (``note`` appended)."""
        found = self.lookup(name)
        if found is None:
            raise unknown_name(self.kind, name, self.names(), note)
        return found

    def get(self, name: str) -> T:
        """The entry of ``name`` (its module imported first when it is a lazy built-in)."""
        found = self.canonical(name)
        if found in self._lazy and found not in self._imported:  # every module, even if one was imported
            for module in self._lazy[found]:
                importlib.import_module(module)
            self._imported.add(found)
        if found not in self._entries:  # the listing and the module's decorator disagree: a bug
            raise RuntimeError(f"{', '.join(self._lazy[found])} did not register {self.kind} '{found}'")
        return self._entries[found]

    def entries(self) -> dict[str, T]:
        """Every entry by name (imports the lazy built-ins)."""
        return {n: self.get(n) for n in self.names()}

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.lookup(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())
